#!/usr/bin/env bash
# Runs on the GPU machine: device listing, the op and runtime tests on the GPU, the core
# benchmark, and cuBLAS's fp32 GEMM through PyTorch for comparison. Results go to $OUT (the
# device tool's output folder) or ./gpu-results.
# Usage (through the device tool): bash scripts/gpu_run.sh      with .gpu carried
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu_env.sh
out=${OUT:-gpu-results}
mkdir -p "$out"
clinfo -l
magellano info --json > "$out/info.json" && magellano info
test_unit --gtest_brief=1 2>&1 | tail -n 15
MAGELLANO_TEST_DEVICE=gpu test_kernel --gtest_brief=1 2>&1 | tail -n 25
bench_core --device gpu --repeats 10 --copy-mib 1024 > "$out/bench_core.json"
python3 scripts/torch_gemm.py > "$out/torch_gemm.json" || echo "PyTorch comparison unavailable"
cat "$out/torch_gemm.json" 2>/dev/null
