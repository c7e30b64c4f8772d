#!/usr/bin/env bash
# `magellano bench serve` for each config of CONFIGS: throughput (aggregate generated tokens/s) and
# latency (time to first token, inter-token latency, p50 / p99) of `magellano serve` at 1, 8 and 32
# concurrent streaming clients (apps/bench/serve.cpp says exactly what is measured), one JSON line
# per client count into OUT.
# Usage: scripts/bench_serve.sh [OUT.jsonl]          (default: serve_<device>.jsonl here)
#   CONFIGS="configs/tiny.json configs/phase1.json"  the models (random weights)
#   DEVICE=gpu                                       the --device (default: magellano's choice)
#   ARGS="--seconds 10 --clients 1,8,32"             more `bench serve` options
# On the GPU machine: scripts/gpu_bundle.sh here, carry .gpu, then there
#   source scripts/gpu_env.sh && DEVICE=gpu scripts/bench_serve.sh "$OUT/serve_h100.jsonl"
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-serve_${DEVICE:-default}.jsonl}
cli=$(command -v magellano || echo build/magellano)
[ -x "$cli" ] || { echo "error: bench_serve: no magellano binary (build first, or source scripts/gpu_env.sh)" >&2; exit 1; }
device_args=()
[ -n "${DEVICE:-}" ] && device_args=(--device "$DEVICE")
: > "$out"
for config in ${CONFIGS:-configs/tiny.json configs/phase1.json}; do
  echo "bench_serve: $config" >&2
  # shellcheck disable=SC2086  # ARGS is a list of options
  "$cli" bench serve --json --config "$config" --peak-size 1024 "${device_args[@]}" ${ARGS:-} >> "$out"
done
echo "bench_serve: $(wc -l < "$out") results in $out" >&2
