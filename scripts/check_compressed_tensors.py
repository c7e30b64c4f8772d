#!/usr/bin/env python3
"""Checks `magellano quantize --format int4` output against the real compressed-tensors library.

A developer script, not part of the test suite (CI has no torch). In a throwaway venv:

    python3 -m venv /tmp/ct && /tmp/ct/bin/pip install compressed-tensors
    /tmp/ct/bin/python scripts/check_compressed_tensors.py make DENSE_DIR [--dtype float32|float16|bfloat16]
    magellano quantize --in DENSE_DIR --out INT4_DIR --format int4 [--group-size N]
    /tmp/ct/bin/python scripts/check_compressed_tensors.py check DENSE_DIR INT4_DIR
    /tmp/ct/bin/python scripts/check_compressed_tensors.py fixture [--out tests/fixtures/int4_ct.safetensors]

`make` writes a small random Llama (transformers' LlamaForCausalLM, widths that 32 and 128 divide)
with save_pretrained. `check` then, for every weight stored as int4:
  1. validates config.json's quantization_config with compressed-tensors' own QuantizationConfig
     and compares it with that object's model_dump() as ModelCompressor.update_config writes it;
  2. decompresses the weight with compressed-tensors' PackedQuantizationCompressor and compares it,
     bit for bit, with Magellano's rule (code * scale rounded to the scale's dtype);
  3. quantizes the dense weight with compressed-tensors (calculate_qparams, quantize, pack_to_int32;
     the scale rounded to the stored scale dtype, as its scale_dtype option does) and compares
     weight_packed, weight_scale and weight_shape with Magellano's, bit for bit;
  4. loads both folders with transformers (the int4 one through its compressed-tensors quantizer,
     decompressed) and compares every decompressed weight with step 2 and the logits with the
     dense model's.
Exits 1 on the first mismatch. `fixture` writes the file tests/unit/test_int4_files.cpp reads
(compressed-tensors' own packed weights, scales and decompressed values; see fixture() below).
"""
import argparse
import json
import os
import sys

import torch
from safetensors import safe_open


def make(args):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=256, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():  # weights far from init's tiny values, with a few outliers
        for p in model.parameters():
            if p.ndim == 2:
                p.normal_(0, 0.05)
                p.view(-1)[::97] *= 6
    model = model.to(getattr(torch, args.dtype))
    model.save_pretrained(args.dense, safe_serialization=True)
    print(f"wrote {args.dense} ({args.dtype})")


def tensors(folder):
    path = os.path.join(folder, "model.safetensors")
    out = {}
    with safe_open(path, framework="pt") as f:
        for k in f.keys():
            out[k] = f.get_tensor(k)
    return out


def fail(msg):
    print("MISMATCH: " + msg)
    sys.exit(1)


def check(args):
    import compressed_tensors
    from compressed_tensors.compressors.pack_quantized import PackedQuantizationCompressor, pack_to_int32
    from compressed_tensors.quantization import QuantizationArgs, QuantizationConfig
    from compressed_tensors.quantization.lifecycle.forward import quantize
    from compressed_tensors.quantization.utils import calculate_qparams

    print(f"compressed-tensors {compressed_tensors.__version__}, torch {torch.__version__}")
    with open(os.path.join(args.int4, "config.json")) as f:
        ours = json.load(f)["quantization_config"]
    qc = QuantizationConfig.model_validate(ours)
    dumped = {"version": compressed_tensors.__version__, "quant_method": "compressed-tensors",
              "sparsity_config": {}, "transform_config": {}, **qc.model_dump(exclude=["quant_method"])}
    dumped = json.loads(json.dumps(dumped, sort_keys=True))
    if dumped != ours:
        fail("config.json's quantization_config differs from compressed-tensors' own dump:\n"
             f"ours   {json.dumps(ours, sort_keys=True)}\ntheirs {json.dumps(dumped, sort_keys=True)}")
    print("1. quantization_config: validated, equal to QuantizationConfig.model_dump() + update_config's keys")
    scheme = qc.config_groups["group_0"]

    dense, q = tensors(args.dense), tensors(args.int4)
    names = sorted(k[: -len("_packed")] for k in q if k.endswith("weight_packed"))
    if not names:
        fail("no int4 weights in " + args.int4)
    decompressed = {}
    for name in names:
        packed, scale, shape = q[name + "_packed"], q[name + "_scale"], q[name + "_shape"]
        w = dense[name]
        # 2. their decompression vs Magellano's rule
        sd = PackedQuantizationCompressor.decompress(
            {"weight_packed": packed, "weight_scale": scale, "weight_shape": shape}, scheme)
        theirs = sd["weight"]
        rows, cols = int(shape[0]), int(shape[1])
        u = packed.to(torch.int64) & 0xFFFFFFFF
        codes = torch.stack([(u >> (4 * i)) & 0xF for i in range(8)], dim=-1).reshape(rows, -1)[:, :cols] - 8
        group = cols // scale.shape[1]
        mine = (codes.to(torch.float32) * scale.to(torch.float32).repeat_interleave(group, dim=1)).to(scale.dtype)
        if theirs.dtype != mine.dtype or not torch.equal(theirs, mine):
            fail(f"{name}: compressed-tensors decompresses other values than Magellano's rule")
        decompressed[name] = theirs
        # 3. their quantization of the dense weight vs our file
        qa = QuantizationArgs(num_bits=4, type="int", symmetric=True, strategy="group", group_size=group,
                              scale_dtype=scale.dtype if scale.dtype != w.dtype else None)
        g = w.unflatten(-1, (cols // group, group))
        s, zp = calculate_qparams(g.amin(-1), g.amax(-1), qa)
        s = s.to(scale.dtype)
        if not torch.equal(s, scale):
            bad = (s != scale).nonzero()[0].tolist()
            fail(f"{name}: weight_scale differs, first at {bad}: theirs {s[tuple(bad)].item()} ours {scale[tuple(bad)].item()}")
        xq = quantize(x=w, scale=s.to(w.dtype) if w.dtype == torch.float32 else s, zero_point=None, args=qa,
                      dtype=torch.int8)
        p = pack_to_int32(xq, 4)
        if not torch.equal(p, packed):
            fail(f"{name}: weight_packed differs from compressed-tensors' quantize + pack_to_int32")
        if shape.dtype != torch.int64 or shape.tolist() != list(w.shape):
            fail(f"{name}: weight_shape is {shape.dtype} {shape.tolist()}")
    print(f"2. {len(names)} weights: compressed-tensors' decompression equals Magellano's, bit for bit")
    print(f"3. {len(names)} weights: weight_packed, weight_scale ({scale.dtype}), weight_shape (int64) equal "
          "compressed-tensors' own quantization of the dense weights, bit for bit")

    # 4. transformers, end to end: dequantized at load, and (its default) decompressed on the first forward
    import inspect

    from transformers import AutoModelForCausalLM, CompressedTensorsConfig

    def load(path, **extra):
        try:
            return AutoModelForCausalLM.from_pretrained(path, dtype="auto", **extra)
        except TypeError:  # transformers 4
            return AutoModelForCausalLM.from_pretrained(path, torch_dtype="auto", **extra)

    params = inspect.signature(CompressedTensorsConfig.__init__).parameters
    dequantize = {"dequantize": True} if "dequantize" in params else {"run_compressed": False}
    base = load(args.dense)
    qm = load(args.int4, quantization_config=CompressedTensorsConfig(**dequantize))
    sd = qm.state_dict()
    for name in names:
        if not torch.equal(sd[name].to(decompressed[name].dtype), decompressed[name]):
            fail(f"{name}: transformers loads other values than compressed-tensors' decompression")
    lazy = load(args.int4)
    ids = torch.randint(0, base.config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a = base(ids).logits.float()
        b = qm(ids).logits.float()
        c = lazy(ids).logits.float()
    rel = ((a - b).abs().mean() / a.abs().mean()).item()
    print(f"4. transformers {transformers_version()} loads the int4 folder: dequantized at load "
          f"({dequantize}) its weights equal step 2's; decompressed on the first forward (its default) "
          f"its logits {'equal those' if torch.equal(b, c) else 'differ from those by %.2g (relative L1)' % ((b - c).abs().mean() / b.abs().mean()).item()}; logits' relative L1 "
          f"difference from the dense model: {rel:.4f}")


def transformers_version():
    import transformers

    return transformers.__version__


def fixture(args):
    """tests/fixtures/int4_ct.safetensors: weights quantized and decompressed by compressed-tensors itself.

    For each case <c> (a dense weight, its dtype, a group size and its scale dtype):
        <c>.dense          the dense weight (F32, F16 or BF16)
        <c>.weight_packed  I32   }
        <c>.weight_scale   F16 / BF16   } PackedQuantizationCompressor.compress of it, with the
        <c>.weight_shape   I64   }  scales of calculate_qparams (scale_dtype = the scale's dtype)
        <c>.dequant        PackedQuantizationCompressor.decompress of those three (the scale's dtype)
    """
    import compressed_tensors
    from compressed_tensors.compressors.pack_quantized import PackedQuantizationCompressor
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
    from compressed_tensors.quantization.utils import calculate_qparams
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(7)

    def weights(rows, cols, std):
        w = torch.randn(rows, cols, generator=g) * std
        w.view(-1)[::53] *= 5                 # outliers
        w[0, :] = 0                           # all-zero groups: the scale becomes eps
        w[1, :] *= 1e-4                       # fp16 scales that are subnormal
        w[3, :] *= 1e-7                       # fp16 scales that round to 0: eps
        w[2, :16] = torch.tensor([7.5, 2.5, 3.5, -2.5, -0.5, 0.5, -7.5, 6.5] * 2)  # scale 1: ties
        return w

    cases = {  # name: (weight, weight dtype, group size, scale dtype)
        "f32": (weights(24, 64, 0.05), torch.float32, 16, torch.float16),
        "f16": (weights(16, 256, 0.02), torch.float16, 128, torch.float16),
        "bf16": (weights(16, 96, 0.1), torch.bfloat16, 32, torch.bfloat16),
        "odd": (weights(8, 36, 0.3), torch.float32, 12, torch.float16),  # 36 columns: 4.5 words
    }
    out = {}
    for name, (w, wdt, group, sdt) in cases.items():
        w = w.to(wdt)
        qa = QuantizationArgs(num_bits=4, type="int", symmetric=True, strategy="group", group_size=group,
                              scale_dtype=sdt if sdt != wdt else None)
        scheme = QuantizationScheme(targets=["Linear"], weights=qa, format="pack-quantized")
        grouped = w.unflatten(-1, (w.shape[1] // group, group))
        scale, _ = calculate_qparams(grouped.amin(-1), grouped.amax(-1), qa)
        c = PackedQuantizationCompressor.compress({"weight": w, "weight_scale": scale.to(sdt)}, scheme)
        d = PackedQuantizationCompressor.decompress(dict(c), scheme)
        out[name + ".dense"] = w
        for k in ("weight_packed", "weight_scale", "weight_shape"):
            out[f"{name}.{k}"] = c[k].contiguous()
        out[name + ".dequant"] = d["weight"].contiguous()
        print(name, {k: (tuple(v.shape), str(v.dtype)) for k, v in c.items()})
    save_file(out, args.out, metadata={"compressed_tensors": compressed_tensors.__version__,
                                       "torch": torch.__version__})
    print("wrote", args.out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("dense")
    m.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    c = sub.add_parser("check")
    c.add_argument("dense")
    c.add_argument("int4")
    f = sub.add_parser("fixture")
    f.add_argument("--out", default="tests/fixtures/int4_ct.safetensors")
    args = ap.parse_args()
    {"make": make, "check": check, "fixture": fixture}[args.cmd](args)


if __name__ == "__main__":
    main()
