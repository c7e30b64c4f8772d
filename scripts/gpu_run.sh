#!/usr/bin/env bash
# Runs on the GPU machine with .gpu carried (scripts/gpu_bundle.sh): device listing, the unit
# and op tests on the GPU, and the benchmarks; then cuBLAS's fp32 GEMM through PyTorch for
# comparison. Results go to $OUT (the device tool's output folder) or ./gpu-results.
# Usage: bash scripts/gpu_run.sh [tests|bench|train|nf4-file|qlora|all]     (default: all)
#   qlora: gradient-checkpointing memory table (tiny, phase1) and production3B QLoRA steps on
#   tinyshakespeare (GPT-2 tokens from $SHARED_DATA, default ../shared/data)
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
if [ "$what" = bench ] || [ "$what" = all ]; then
  bench_core --device gpu --repeats 10 --copy-mib 1024 > "$out/bench_core.json"
  bench_scan --device gpu --repeats 5 > "$out/bench_scan.json"
  [ -x .gpu/bin/bench_moe ] && bench_moe --device gpu > "$out/bench_moe.json"
  magellano bench nf4 --device gpu --json --full 1 > "$out/bench_nf4.json"
  python3 scripts/torch_gemm.py > "$out/torch_gemm.json" || echo "PyTorch comparison unavailable"
fi
if [ "$what" = train ] || [ "$what" = all ]; then
  # cuBLAS fp32 at 4096, measured in this session, is the reference for model-FLOP utilisation.
  [ -s "$out/torch_gemm.json" ] || python3 scripts/torch_gemm.py > "$out/torch_gemm.json"
  ref=$(python3 -c "import json; print(json.load(open('$out/torch_gemm.json'))['gemm'][-1]['gflops'])" 2>/dev/null || echo 0)
  for c in tiny phase1; do
    bench_train --config configs/$c.json --device gpu --batch 8 --steps 5 \
      --reference-gflops "$ref" --reference-name "cuBLAS fp32 sgemm 4096 (PyTorch), same session" \
      > "$out/train_$c.json"
  done
fi
if [ "$what" = qlora ] || [ "$what" = all ]; then
  bench_checkpointing --device gpu --config configs/tiny.json --config configs/phase1.json \
    --batch 1 --seq-len 512 > "$out/checkpointing.json"
  # tokens/s and peak memory of production3B QLoRA at 1 x 512 (random tokens)
  bench_train --config configs/production3B.json --device gpu --batch 1 --steps 3 > "$out/train_production3B_qlora.json"
  shared=${SHARED_DATA:-../shared/data}
  mkdir -p "$out/qlora"
  magellano tokenize --tokenizer "$shared/gpt2" --in "$shared/corpus/tinyshakespeare.txt" \
    --out "$out/qlora/shakespeare" --val-fraction 0.05
  magellano train --config configs/production3B.json --device gpu --set train.steps=10 \
    --set train.warmup_steps=1 --set train.grad_accum=1 --set eval.batches=2 \
    --set data.train="$out/qlora/shakespeare.train.tok" --set data.val="$out/qlora/shakespeare.val.tok" \
    --set checkpoint.dir="$out/qlora/run" --set checkpoint.every=0 2>&1 | tail -n 20
  rm -rf "$out/qlora/run"/step-*  # the adapter is ~150 MB; metrics.jsonl stays
fi
if [ "$what" = nf4-file ]; then
  magellano bench nf4 --device gpu --json --repeats 1 --file "${TMPDIR:-/tmp}" > "$out/bench_nf4_file.json"
fi
