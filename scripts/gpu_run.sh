#!/usr/bin/env bash
# Runs on the GPU machine with .gpu carried (scripts/gpu_bundle.sh): device listing, the unit
# and op tests on the GPU, and the benchmarks; then cuBLAS's fp32 GEMM through PyTorch for
# comparison. Results go to $OUT (the device tool's output folder) or ./gpu-results.
# Usage: bash scripts/gpu_run.sh [tests|bench|train|tune|gemm|all]     (default: all)
#   tune: `magellano tune-gemm` for the GPU (CLBlast's tuners over TUNE_FRACTION of their
#         space, default 0.01; killed after TUNE_TIMEOUT s, default 500), writing
#         $OUT/gemm_tuning.json: commit it as configs/tuning/<device-slug>.json and rebuild.
#   gemm: `bench gemm` (squares and phase1's shapes), tuned CLBlast next to CLBlast's database
#         (GEMM_TUNING=FILE uses that file instead of the embedded one), and cuBLAS through
#         PyTorch. Neither is part of `all`.
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
if [ "$what" = tune ]; then  # one command: stays under the device tool's 10 minutes
  timeout "${TUNE_TIMEOUT:-500}" magellano tune-gemm --device gpu --fraction "${TUNE_FRACTION:-0.01}" \
    --size "${TUNE_SIZE:-2048}" --repeats 5 \
    --shapes "4096x4096x4096,2048x2048x2048,4096x1792x448:nt,4096x448x1792,1792x448x4096:tn,4096x50257x448:nt" \
    --out "$out/gemm_tuning.json" 2>&1 | tail -n 40
fi
if [ "$what" = gemm ]; then  # GEMM_TUNING=FILE: a tuning file to use instead of the embedded one
  if [ -n "${GEMM_TUNING:-}" ]; then export MAGELLANO_GEMM_TUNING="$GEMM_TUNING"; fi
  magellano bench gemm --device gpu --json --repeats 10 --paths clblast,clblast_database \
    > "$out/bench_gemm.json"
  magellano bench gemm --device gpu --json --repeats 10 --shapes phase1 --tokens 4096 \
    --paths clblast,clblast_database > "$out/bench_gemm_phase1.json"
  python3 scripts/torch_gemm.py > "$out/torch_gemm.json" || echo "PyTorch comparison unavailable"
fi
