#!/usr/bin/env bash
# Runs on the GPU machine with .gpu carried (scripts/gpu_bundle.sh): device listing, the unit
# and op tests on the GPU, and the benchmark suite with cuBLAS's fp32 GEMM through PyTorch as
# the reference. Results go to $OUT (the device tool's output folder) or ./gpu-results.
# Usage: bash scripts/gpu_run.sh [tests|suite|qlora|nf4-file|all]     (default: all)
#   suite: torch_gemm.json (cuBLAS), then `magellano bench all --json` with cuBLAS's 4096 rate
#          as train-step's MFU reference, plus train-step for phase1, into suite_h100.jsonl
#          (copy it to benchmarks/results/suite_h100_<date>.jsonl).
#   qlora: gradient-checkpointing memory table (tiny, phase1), production3B QLoRA train-step at
#          1 x 512, and 10 production3B QLoRA training steps on tinyshakespeare (GPT-2 tokens
#          from $SHARED_DATA, default shared/data or ../shared/data)
#   nf4-file: `magellano quantize` end to end on a generated production3B file (~13 GB in $TMPDIR)
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu_env.sh
out=${OUT:-gpu-results}
what=${1:-all}
mkdir -p "$out"
magellano info --json > "$out/info.json" && magellano info | head -3
if [ "$what" = tests ] || [ "$what" = all ]; then
  test_unit --gtest_brief=1 2>&1 | tail -n 12
  MAGELLANO_TEST_DEVICE=gpu test_kernel --gtest_brief=1 2>&1 | tail -n 25
fi
if [ "$what" = suite ] || [ "$what" = all ]; then
  python3 scripts/torch_gemm.py --jsonl "$out/torch_gemm.jsonl" > "$out/torch_gemm.json" \
    || echo "PyTorch comparison unavailable"
  ref=$(python3 -c "import json; print(json.load(open('$out/torch_gemm.json'))['gemm'][-1]['gflops'])" 2>/dev/null || echo 0)
  refname="cuBLAS fp32 sgemm 4096 (PyTorch, no TF32), same session"
  [ -d shared/data ] && export MAGELLANO_SHARED_DATA="$PWD/shared/data"  # else tokenizer reports an error
  magellano bench all --device gpu --json --copy-mib 1024 --repeats 5 \
    --reference-gflops "$ref" --reference-name "$refname" > "$out/suite_h100.jsonl"
  magellano bench train-step --config configs/phase1.json --device gpu --json --batch 8 --steps 5 \
    --reference-gflops "$ref" --reference-name "$refname" >> "$out/suite_h100.jsonl"
  # Decoding tokens/s by position (100, 8000) and batch (1, 8) for phase1 (`all` runs tiny).
  magellano bench generate --config configs/phase1.json --device gpu --json --tokens 32 >> "$out/suite_h100.jsonl"
  magellano bench nf4 --device gpu --json --full 1 >> "$out/suite_h100.jsonl"
  cat "$out/torch_gemm.jsonl" >> "$out/suite_h100.jsonl" 2>/dev/null
  wc -l "$out/suite_h100.jsonl"
fi
if [ "$what" = qlora ] || [ "$what" = all ]; then
  for c in tiny phase1; do
    magellano bench checkpointing --device gpu --json --config configs/$c.json --batch 1 --seq-len 512 \
      --peak-size 2048 >> "$out/qlora_h100.jsonl"
  done
  # tokens/s and peak memory of production3B QLoRA at 1 x 512 (random tokens)
  magellano bench train-step --config configs/production3B.json --device gpu --json --batch 1 --steps 3 \
    --peak-size 2048 >> "$out/qlora_h100.jsonl"
  shared=${SHARED_DATA:-shared/data}
  [ -d "$shared" ] || shared=../shared/data
  mkdir -p "$out/qlora"
  magellano tokenize --tokenizer "$shared/gpt2" --in "$shared/corpus/tinyshakespeare.txt" \
    --out "$out/qlora/shakespeare" --val-fraction 0.05
  magellano train --config configs/production3B.json --device gpu --set train.steps=10 \
    --set train.warmup_steps=1 --set train.grad_accum=1 --set eval.batches=2 \
    --set data.train="$out/qlora/shakespeare.train.tok" --set data.val="$out/qlora/shakespeare.val.tok" \
    --set checkpoint.dir="$out/qlora/run" --set checkpoint.every=0 2>&1 | tail -n 20
  rm -rf "$out/qlora/run"/step-* "$out/qlora"/*.tok  # the adapter is ~150 MB; metrics.jsonl stays
fi
if [ "$what" = nf4-file ]; then
  magellano bench nf4 --device gpu --json --repeats 1 --file "${TMPDIR:-/tmp}" > "$out/bench_nf4_file.json"
fi
