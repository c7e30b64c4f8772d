#!/usr/bin/env bash
# The device sampler on the GPU machine (issue 19): the top-k fast path (sample_segments +
# sample_merge, the default) against the full path (MAGELLANO_SAMPLE_FAST=0) in the same session.
# First the sampler tests (the fast path must equal the full path bit for bit on this device too),
# then `bench generate` for phase1 at batch 1 and 8 per path, twice, interleaved (extra.sampler_ms
# is the sampler alone; extra.sampler_path and sampler_segments say which path ran), a segment-count
# sweep of the fast path at batch 1 (MAGELLANO_SAMPLE_SEGMENTS), and one profiled run per path
# (MAGELLANO_PROFILE=1: device time and launches per kernel name: extra.profile_one_token).
# Results: JSON lines and the log in $OUT, packed as $OUT/sampler_gpu.tar.gz.
# Run from the repository root after scripts/gpu_bundle.sh here and `source scripts/gpu_env.sh` there:
#   OUT=/some/dir scripts/sampler_gpu_bench.sh
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to a folder for the results}"
mkdir -p "$OUT/sampler"
res="$OUT/sampler"
cli=.gpu/bin/magellano
[ -x "$cli" ] || { echo "no $cli: run scripts/gpu_bundle.sh first and source scripts/gpu_env.sh" >&2; exit 1; }
log="$res/sampler_gpu.log"
"$cli" info >"$res/info.txt" 2>&1
# Numbers from a sampler that fails its tests mean nothing.
.gpu/bin/test_kernel --gtest_filter='Sample.*:SampleFast.*' >"$res/sampler_tests.txt" 2>&1 || echo "sampler tests FAILED" >>"$log"
tail -3 "$res/sampler_tests.txt" >>"$log"
# The sampler op's perf size (8 rows of 50,257; top-k 50, top-p 0.9, penalty 1.2), per path.
for fast in 1 0; do
  MAGELLANO_SAMPLE_FAST=$fast MAGELLANO_TEST_PERF=1 MAGELLANO_TEST_PERF_OPS=sample .gpu/bin/test_kernel \
      --gtest_filter=OpPerf.All >"$res/op_perf_fast$fast.txt" 2>&1 || echo "op perf fast=$fast FAILED" >>"$log"
done
for round in 1 2; do
  for fast in 1 0; do
    name="generate_phase1_fast${fast}_r$round"
    echo "== $name" >>"$log"
    MAGELLANO_SAMPLE_FAST=$fast "$cli" bench generate --json --config configs/phase1.json --positions 100 \
        --batches 1,8 --tokens 64 >"$res/$name.jsonl" 2>>"$log" || echo "   exit $?" >>"$log"
  done
done
for segments in 33 66 132 264; do  # the default on an H100 is its 132 compute units
  name="generate_phase1_segments$segments"
  echo "== $name" >>"$log"
  MAGELLANO_SAMPLE_SEGMENTS=$segments "$cli" bench generate --json --config configs/phase1.json --positions 100 \
      --batches 1 --tokens 64 >"$res/$name.jsonl" 2>>"$log" || echo "   exit $?" >>"$log"
done
for fast in 1 0; do  # where the time goes, per kernel (device time; launches = calls)
  echo "== profile fast=$fast" >>"$log"
  MAGELLANO_PROFILE=1 MAGELLANO_SAMPLE_FAST=$fast "$cli" bench generate --json --config configs/phase1.json \
      --positions 100 --batches 1 --tokens 16 >"$res/profile_phase1_fast$fast.jsonl" 2>>"$log" || echo "   exit $?" >>"$log"
done
tar -czf "$OUT/sampler_gpu.tar.gz" -C "$OUT" sampler
echo "done: $OUT/sampler_gpu.tar.gz" >>"$log"
