#!/usr/bin/env bash
# 8-bit and host-paged AdamW on the GPU machine: the optimizer tests first (bit-exact against the
# float64 reference, paging bit-identical), then `bench adamw` (fp32, fp16, clip, int8, fp32 and
# int8 paged; GB/s next to the copy peak) at the default 4096 x 4096. Writes JSON lines to $OUT
# and a short log. Run from the repository root after scripts/gpu_bundle.sh here and
# `source scripts/gpu_env.sh` there:
#   OUT=/some/dir scripts/adamw8_gpu_bench.sh
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to a folder for the results}"
mkdir -p "$OUT"
cli=.gpu/bin/magellano
[ -x "$cli" ] || { echo "no $cli: run scripts/gpu_bundle.sh first and source scripts/gpu_env.sh" >&2; exit 1; }
log="$OUT/adamw8_gpu.log"
.gpu/bin/test_kernel --gtest_filter='AdamW*' >"$OUT/adamw8_tests.txt" 2>&1 || echo "AdamW tests FAILED" >>"$log"
echo "== bench adamw" >>"$log"
"$cli" bench adamw --json --repeats 5 >"$OUT/adamw8_gpu.jsonl" 2>>"$log" || echo "   exit $?" >>"$log"
# The dynamic map against torch's (the GPU machine's python3 has PyTorch).
MAGELLANO_DYNAMIC_MAP_OUT="$OUT/dynamic_map_cpp.txt" .gpu/bin/test_kernel --gtest_filter=AdamW8.DynamicMapIsBitsandbytesMap >/dev/null 2>&1
python3 scripts/bnb_dynamic_map.py --check "$OUT/dynamic_map_cpp.txt" >"$OUT/bnb_dynamic_map.txt" 2>&1 ||
  echo "dynamic map differs from torch's (see bnb_dynamic_map.txt)" >>"$log"
echo "done: $(ls "$OUT")" >>"$log"
