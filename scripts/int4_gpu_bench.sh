#!/usr/bin/env bash
# int4 on the GPU machine: the int4 op tests, the kernels (fused dequantize-and-multiply GB/s
# against the copy peak, quantize, dequantize, int4 vs NF4 error), the decode speed of an int4
# base against fp32, and `magellano quantize` file to file on a generated production3B file
# (12.7 GB in ${TMPDIR:-/tmp}; NF4 on the GPU, then int4, which quantizes on the host's threads:
# all of them, then one, so the two int4 figures show what the threads bring on that host;
# QUANTIZE_FILE=0 skips it). Writes JSON lines to $OUT (one file per measurement) and a short
# log. Run from the repository root after scripts/gpu_bundle.sh here and `source
# scripts/gpu_env.sh` there:
#   OUT=/some/dir scripts/int4_gpu_bench.sh
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to a folder for the results}"
mkdir -p "$OUT"
cli=.gpu/bin/magellano
[ -x "$cli" ] || { echo "no $cli: run scripts/gpu_bundle.sh first and source scripts/gpu_env.sh" >&2; exit 1; }
log="$OUT/int4_gpu.log"
run() {  # name, then the command; its stdout to $OUT/name.jsonl, its stderr to the log
  local name=$1; shift
  echo "== $name: $*" >>"$log"
  "$@" >"$OUT/$name.jsonl" 2>>"$log" || echo "   exit $?" >>"$log"
}
# The op tests first: numbers from kernels that fail their tests mean nothing.
.gpu/bin/test_kernel --gtest_filter='Int4*:*int4_linear*' >"$OUT/int4_tests.txt" 2>&1 || echo "int4 tests FAILED" >>"$log"
# Kernels on production3B's Mamba in_proj (8192 x 2048, the default) and out_proj (2048 x 4096), group 128.
run int4_kernels_gpu "$cli" bench int4 --json --repeats 20
run int4_kernels_gpu_2048x4096 "$cli" bench int4 --json --repeats 20 --out 2048 --in 4096
# Batch-1 (and 8) decoding, int4 base vs fp32, on the model the PoCL figures used (24 Mamba
# blocks, dim 1024, vocabulary 1024) and on phase3 (its tied 50257-word head stays fp32).
for base in fp32 int4; do
  run "int4_decode_m24_$base" "$cli" bench generate --json --base "$base" --positions 100 --batches 1,8 --tokens 32 \
      --config benchmarks/results/int4_decode_pocl_2026-12-06.m24_d1024.json
  run "int4_decode_phase3_$base" "$cli" bench generate --json --base "$base" --positions 100 --batches 1,8 --tokens 32 \
      --config configs/phase3.json
done
if [ "${QUANTIZE_FILE:-1}" != 0 ]; then
  run quantize_file_gpu "$cli" bench nf4 --device gpu --json --repeats 1 --file "${TMPDIR:-/tmp}" \
      --int4-threads "$(nproc),1"
fi
echo "done: $(ls "$OUT")" >>"$log"
