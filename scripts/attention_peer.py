#!/usr/bin/env python3
"""PyTorch's fused attention (scaled_dot_product_attention, fp32, causal, GQA) at the sizes of
`magellano bench attention`, as its peer in the same session. FLOPs as ops::attention_work counts
them: forward 4·B·nH·L²·d, halved when causal; backward 2.5x the forward. One JSON line per size.
Usage: attention_peer.py [--b 8] [--h 16] [--kv 4] [--d 64] [--l 512,2048,8192]"""
import argparse
import json

import torch
import torch.nn.functional as F


def timed(fn, repeats=5):
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return sorted(times)[len(times) // 2]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--b", type=int, default=8)
    p.add_argument("--h", type=int, default=16)
    p.add_argument("--kv", type=int, default=4)
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--l", default="512,2048,8192")
    a = p.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    for L in (int(x) for x in a.l.split(",")):
        q = torch.randn(a.b, a.h, L, a.d, device="cuda", requires_grad=True)
        k = torch.randn(a.b, a.kv, L, a.d, device="cuda", requires_grad=True)
        v = torch.randn(a.b, a.kv, L, a.d, device="cuda", requires_grad=True)
        dout = torch.randn(a.b, a.h, L, a.d, device="cuda")
        fwd = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        def fwd_bwd():
            q.grad = k.grad = v.grad = None
            fwd().backward(dout)
        flops = 4.0 * a.b * a.h * L * L * a.d / 2
        for name, fn, work in (("attention_fwd", fwd, flops), ("attention_fwd_bwd", fwd_bwd, 3.5 * flops)):
            s = timed(fn)
            print(json.dumps({"name": name, "peer": "torch sdpa fp32 " + torch.__version__, "sizes":
                              {"B": a.b, "L": L, "nH": a.h, "nKV": a.kv, "d": a.d, "causal": True},
                              "median_s": s, "gflops": work / s / 1e9}))


if __name__ == "__main__":
    main()
