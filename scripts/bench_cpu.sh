#!/usr/bin/env bash
# Runs the benchmark suite (`magellano bench all --json`) on this machine's default OpenCL
# device (PoCL on a CPU), plus training throughput of `phase1`, and writes the JSON lines to
# benchmarks/results/suite_<tag>_<date>.jsonl (one object per result; the device, driver and
# date are in every line). Run it on an idle machine: the numbers are only as quiet as the
# cores. Takes about 10 minutes on 2 cores.
# Usage: scripts/bench_cpu.sh [BUILD_DIR]      (TAG=pocl by default; DEVICE=cpu by default)
#   BENCH_ARGS="..." adds options to every run, e.g. a lighter run on a busy machine:
#   BENCH_ARGS="--peak-repeats 1 --repeats 2 --tokens 1024" scripts/bench_cpu.sh build
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
tag=${TAG:-pocl}
device=${DEVICE:-cpu}
day=$(date -u +%F)
out=benchmarks/results/suite_${tag}_${day}.jsonl
mg="$build/magellano"
status=0
# shellcheck disable=SC2086  # BENCH_ARGS is split into options on purpose
"$mg" bench all --device "$device" --json ${BENCH_ARGS:-} > "$out" || status=$?
# Issue 8's training benchmark also wants phase1 (76.9M parameters); at batch 1 x 512 on 2 cores.
"$mg" bench train-step --config configs/phase1.json --batch 1 --steps 2 --device "$device" --json \
  --peak-repeats 1 >> "$out" || status=$?
echo "results in $out ($(wc -l < "$out") lines); plot with: scripts/plot_bench.py"
exit $status
