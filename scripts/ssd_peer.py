"""mamba_ssm's Triton SSD (mamba_chunk_scan_combined) at `magellano bench ssd`'s sizes, as the
peer of our OpenCL SSD on the GPU machine. Prints one JSON line per measurement in the suite's
format (name ssd_fwd / ssd_fwd_bwd with "peer": "mamba_ssm triton").

mamba_ssm's package __init__ imports its CUDA extensions, which are not built here: the Triton
kernels are imported from a source checkout through a bare package object instead
(MAMBA_SSM_SRC: a folder holding mamba_ssm/ops/triton and mamba_ssm/utils, plus einops on
sys.path). Triton's tl.dot runs fp32 inputs as TF32 by default, which mamba_ssm keeps: say so
when comparing with fp32 kernels. FLOPs use the formula of ops::ssd_scan_work (src/ops/ssd_plan.cpp)
at the peer's chunk size."""
import argparse
import json
import os
import sys
import time
import types

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--src", default=os.environ.get("MAMBA_SSM_SRC", ".peer"))
parser.add_argument("--sizes", default="8x2048x16x64x64", help="BxLxHxPxN[,...] (G = 1)")
parser.add_argument("--chunks", default="64,256")
parser.add_argument("--repeats", type=int, default=10)
args = parser.parse_args()

sys.path.insert(0, args.src)
pkg = types.ModuleType("mamba_ssm")
pkg.__path__ = [os.path.join(args.src, "mamba_ssm")]
sys.modules["mamba_ssm"] = pkg
from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined  # noqa: E402


def work(b, l, h, p, g, n, chunk):
    """ops::ssd_scan_work: useful FLOPs of the chunked algorithm (a multiply-add is 2)."""
    fwd = bwd = 0.0
    np_ = n * p
    for t0 in range(0, l, chunk):
        q = min(chunk, l - t0)
        tri = q * (q + 1) / 2
        fwd += b * (h * (4 * q * np_ + 2 * np_ + 2 * tri * p + 2 * q * p) + g * 2 * tri * n)
        bwd += b * (h * (8 * q * np_ + 4 * np_ + 4 * tri * p + 4 * tri * n + 4 * q * n) + g * 2 * tri * n)
    return fwd, bwd


def median_s(f):
    f()
    torch.cuda.synchronize()
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        f()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


dev = torch.cuda.get_device_name(0)
for size in args.sizes.split(","):
    b, l, h, p, n = (int(v) for v in size.split("x"))
    g = 1
    gen = torch.Generator(device="cuda").manual_seed(1)
    def rnd(*shape, lo=-1.0, hi=1.0):
        return (torch.rand(*shape, device="cuda", generator=gen) * (hi - lo) + lo).requires_grad_()
    x = rnd(b, l, h, p)
    dt = rnd(b, l, h)
    A = (-torch.exp(rnd(h, lo=0.0, hi=2.77))).detach().requires_grad_()
    Bm, Cm = rnd(b, l, g, n), rnd(b, l, g, n)
    D = rnd(h, lo=0.5, hi=1.5)
    dt_bias = rnd(h, lo=-6.9, hi=-2.3)
    dy = torch.rand(b, l, h, p, device="cuda", generator=gen)
    for chunk in (int(c) for c in args.chunks.split(",")):
        def fwd():
            with torch.no_grad():
                mamba_chunk_scan_combined(x, dt, A, Bm, Cm, chunk, D=D, dt_bias=dt_bias, dt_softplus=True)
        def fwd_bwd():
            for t in (x, dt, A, Bm, Cm, D, dt_bias):
                t.grad = None
            y = mamba_chunk_scan_combined(x, dt, A, Bm, Cm, chunk, D=D, dt_bias=dt_bias, dt_softplus=True)
            y.backward(dy)
        f_fwd, f_bwd = work(b, l, h, p, g, n, chunk)
        sizes = {"B": b, "L": l, "H": h, "P": p, "G": g, "N": n, "chunk": chunk}
        for name, f, flops in (("ssd_fwd", fwd, f_fwd), ("ssd_fwd_bwd", fwd_bwd, f_fwd + f_bwd)):
            s = median_s(f)
            print(json.dumps({"name": name, "peer": "mamba_ssm triton (tl.dot in TF32)", "device": dev,
                              "torch": torch.__version__, "sizes": sizes, "median_s": s,
                              "gflops": flops / s / 1e9}), flush=True)
