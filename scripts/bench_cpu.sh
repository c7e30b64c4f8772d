#!/usr/bin/env bash
# Runs the benchmarks on this machine's default OpenCL device (PoCL on a CPU) and writes
# their JSON to benchmarks/results/<name>_<device>_<date>.json. Run it on an idle machine:
# the numbers are only as quiet as the cores. Usage: scripts/bench_cpu.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
tag=${TAG:-pocl}
day=$(date -u +%F)
out=benchmarks/results
"$build/benchmarks/bench_core" --repeats 3 > "$out/core_${tag}_${day}.json"
"$build/benchmarks/bench_scan" --repeats 3 > "$out/scan_${tag}_${day}.json"
"$build/benchmarks/bench_moe" > "$out/moe_${tag}_${day}.json"
"$build/benchmarks/bench_tokenizer" > "$out/tokenizer_host_${day}.json"  # host code, no OpenCL
echo "results in $out/*_${tag}_${day}.json"
