#!/usr/bin/env python3
"""Writes tests/fixtures/nf4_bnb.safetensors: NF4 double quantization as bitsandbytes computes it.

Optional developer script (the tests only read its output). Needs torch and bitsandbytes:
    python3 -m venv /tmp/venv-bnb && /tmp/venv-bnb/bin/pip install torch bitsandbytes
    /tmp/venv-bnb/bin/python scripts/nf4_reference.py [--out tests/fixtures/nf4_bnb.safetensors]

For every case <c> the file holds (bitsandbytes' own outputs on its CPU path, fp32 input):
    <c>.input           F32   the input (absent for "gen" cases: the test regenerates them with
                              the same integer generator, gen_values() below)
    <c>.packed          U8    quantize_4bit(..., quant_type="nf4", blocksize=64) packed bytes
    <c>.absmax          F32   the fp32 absmax values (compress_statistics=False)
    <c>.absmax_q        U8    compress_statistics=True: the nested 8-bit codes
    <c>.nested_absmax   F32   its fp32 scale per 256 absmax values
    <c>.offset          F32   [1] the mean of the absmax values
    <c>.absmax_dq       F32   dequantize_blockwise(absmax_q, state2) + offset
    <c>.dequant         F32   dequantize_4bit(packed, state) (small cases only)
plus quant_map (16) and nested_quant_map (256) as QuantState stores them, and one linear weight
"layout.proj.weight" saved the way transformers saves a bitsandbytes 4-bit Linear layer
(Linear4bit._save_to_state_dict: weight + weight.absmax, weight.quant_map, weight.nested_absmax,
weight.nested_quant_map, weight.quant_state.bitsandbytes__nf4), with layout.proj.bias beside it.
"""
import argparse
import json
import struct

import numpy as np
import torch
import bitsandbytes as bnb
import bitsandbytes.functional as F

MASK = (1 << 64) - 1


def gen_values(n, seed, scale):
    """n fp32 values: splitmix64 -> four 24-bit uniforms -> (u1+u2+u3+u4-2) * scale, rounded to
    fp32 (scale a power of two). Only integer arithmetic and exact float ops, so the C++ test
    (tests/unit/test_nf4_bnb.cpp) regenerates the same bits."""
    state = seed & MASK
    out = np.empty(n, dtype=np.float32)
    for i in range(n):
        total = 0.0
        for _ in range(4):
            state = (state + 0x9E3779B97F4A7C15) & MASK
            z = state
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
            z = z ^ (z >> 31)
            total += (z >> 40) / 16777216.0
        out[i] = np.float32((total - 2.0) * scale)
    return out


def nf4_midpoints():
    code = F.get_4bit_type("nf4", device="cpu").float()
    return ((code[:-1] + code[1:]) / 2).numpy().astype(np.float32), code.numpy()


def ties_case():
    """Values on the fp32 midpoints between NF4 codes, one ulp either side, the codes, +-0, +-1;
    the same scaled by 2 (exact) and by 0.75 (through the fp32 reciprocal), then random."""
    mids, code = nf4_midpoints()
    up = np.nextafter(mids, np.float32(np.inf))
    down = np.nextafter(mids, np.float32(-np.inf))
    base = np.concatenate([[1.0, -1.0, 0.0, -0.0], mids, up, down, code[1:-1]]).astype(np.float32)
    base = np.concatenate([base, np.zeros(64 - base.size, np.float32)])
    assert base.size == 64
    rand = gen_values(64, 7, 1.0)
    return np.concatenate([base, base * np.float32(2.0), base * np.float32(0.75), rand])


def save_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, arr in tensors:
        arr = np.ascontiguousarray(arr)
        dtype = {np.dtype(np.float32): "F32", np.dtype(np.uint8): "U8"}[arr.dtype]
        data = arr.tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/nf4_bnb.safetensors")
    args = ap.parse_args()

    cases = [  # name, input, shape, stored input?, stored dequant?
        ("ties", ties_case(), (4, 64), True, True),
        ("odd", np.where(np.arange(201) % 17 == 3, 0, gen_values(201, 11, 0.5)), (201,), True, True),
        ("zeros", np.concatenate([np.zeros(64), gen_values(64, 13, 0.25), np.zeros(22)]),
         (3, 50), True, True),
        ("constant", np.full(128, 0.5), (2, 64), True, True),
        ("allzero", np.zeros(100), (100,), True, True),
        ("gen", gen_values(300 * 70, 17, 0.03125), (300, 70), False, False),
    ]
    out = []
    quant_map = nested_map = None
    for name, values, shape, keep_input, keep_dequant in cases:
        x = torch.tensor(np.asarray(values, dtype=np.float32)).reshape(shape)
        packed, plain = F.quantize_4bit(x, blocksize=64, compress_statistics=False, quant_type="nf4")
        packed2, st = F.quantize_4bit(x, blocksize=64, compress_statistics=True, quant_type="nf4")
        assert torch.equal(packed, packed2)
        absmax_dq = F.dequantize_blockwise(st.absmax, st.state2) + st.offset
        deq = F.dequantize_4bit(packed2, st)
        if keep_input:
            out.append((f"{name}.input", x.numpy()))
        out += [
            (f"{name}.packed", packed.reshape(-1).numpy()),
            (f"{name}.absmax", plain.absmax.numpy()),
            (f"{name}.absmax_q", st.absmax.numpy()),
            (f"{name}.nested_absmax", st.state2.absmax.numpy()),
            (f"{name}.offset", st.offset.reshape(1).numpy()),
            (f"{name}.absmax_dq", absmax_dq.float().numpy()),
        ]
        if keep_dequant:
            out.append((f"{name}.dequant", deq.numpy()))
        quant_map, nested_map = st.code.numpy(), st.state2.code.numpy()
        err = (deq - x).abs().mean().item()
        print(f"{name}: n={x.numel()} blocks={plain.absmax.numel()} offset={st.offset.item()!r} "
              f"mean abs err {err:.6f}")
    out += [("quant_map", quant_map), ("nested_quant_map", nested_map),
            ("dynamic_map", F.create_dynamic_map(signed=True).numpy())]

    # One linear weight as transformers saves a bitsandbytes 4-bit Linear layer.
    w = torch.tensor(gen_values(24 * 40, 23, 0.0625)).reshape(24, 40)
    layer = bnb.nn.Linear4bit(40, 24, bias=True, compress_statistics=True, quant_type="nf4",
                              compute_dtype=torch.float32)
    layer.weight = bnb.nn.Params4bit(w, requires_grad=False, compress_statistics=True,
                                     quant_type="nf4", blocksize=64)
    layer.bias = torch.nn.Parameter(torch.tensor(gen_values(24, 29, 0.125)))
    layer._quantize_weight = None
    sd = {}
    try:
        layer.weight = layer.weight._quantize("cpu")
    except AttributeError:
        pass
    layer._save_to_state_dict(sd, "layout.proj.", keep_vars=False)
    for k, v in sd.items():
        out.append((k, v.detach().numpy()))
    out.append(("layout.proj.weight_fp32", w.numpy()))
    out.append(("layout.proj.dequant", F.dequantize_4bit(layer.weight.data, layer.weight.quant_state).numpy()))
    print("layout keys:", {k: (tuple(v.shape), str(v.dtype)) for k, v in sd.items()})
    qs = bytes(sd["layout.proj.weight.quant_state.bitsandbytes__nf4"].tolist()).decode()
    print("quant state JSON:", qs)

    save_safetensors(args.out, out)
    print(f"wrote {args.out} (torch {torch.__version__}, bitsandbytes {bnb.__version__}, "
          f"cpu capability {torch.backends.cpu.get_cpu_capability()})")


if __name__ == "__main__":
    main()
