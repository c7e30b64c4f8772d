#!/usr/bin/env bash
# Runs on the GPU machine with .gpu carried (scripts/gpu_bundle.sh): device listing, the unit
# and op tests on the GPU, and the benchmarks; then cuBLAS's fp32 GEMM through PyTorch for
# comparison. Results go to $OUT (the device tool's output folder) or ./gpu-results.
# Usage: bash scripts/gpu_run.sh [tests|bench|train|nf4-file|all]     (default: all)
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
if [ "$what" = nf4-file ]; then
  magellano bench nf4 --device gpu --json --repeats 1 --file "${TMPDIR:-/tmp}" > "$out/bench_nf4_file.json"
fi
