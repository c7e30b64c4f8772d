#!/usr/bin/env bash
# Batch-1 (and 8) decoding on the GPU machine, fused decode path (the default) against the unfused
# one (MAGELLANO_FUSED_DECODE=0) in the same session: the decode op tests first, then
# `bench generate` for phase1 (issue 19's goal: >= 2,000 tokens/s at batch 1) and tiny, each
# path twice, and one profiled run per path (MAGELLANO_PROFILE=1: device time and launches per
# kernel name: extra.profile_one_token). Results: JSON lines and the log in $OUT, packed as $OUT/decode_gpu.tar.gz.
# Run from the repository root after scripts/gpu_bundle.sh here and `source scripts/gpu_env.sh` there:
#   OUT=/some/dir scripts/decode_gpu_bench.sh
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to a folder for the results}"
mkdir -p "$OUT/decode"
res="$OUT/decode"
cli=.gpu/bin/magellano
[ -x "$cli" ] || { echo "no $cli: run scripts/gpu_bundle.sh first and source scripts/gpu_env.sh" >&2; exit 1; }
log="$res/decode_gpu.log"
"$cli" info >"$res/info.txt" 2>&1
# Numbers from kernels that fail their tests mean nothing.
.gpu/bin/test_kernel --gtest_filter='*decode_gemv*:*mamba_conv_step*:*mamba_ssm_step*:*moe_decode*:DecodeGemv.*:MambaDecode.*:MoEDecode.*:Model.*Decoding*:Generate*' \
    >"$res/decode_tests.txt" 2>&1 || echo "decode tests FAILED" >>"$log"
tail -3 "$res/decode_tests.txt" >>"$log"
# The decode ops' perf sizes (phase1's in_proj + conv, ssm step with x_proj, LM head, experts).
MAGELLANO_TEST_PERF=1 MAGELLANO_TEST_PERF_OPS=decode_gemv_conv,mamba_ssm_step,decode_gemv,moe_decode_route,moe_decode_experts \
    .gpu/bin/test_kernel --gtest_filter=OpPerf.All >"$res/op_perf.txt" 2>&1 || echo "op perf FAILED" >>"$log"
for round in 1 2; do
  for fused in 1 0; do
    for cfg in phase1 tiny; do
      name="decode_${cfg}_fused${fused}_r$round"
      echo "== $name" >>"$log"
      MAGELLANO_FUSED_DECODE=$fused "$cli" bench generate --json --config "configs/$cfg.json" --positions 100 \
          --batches 1,8 --tokens 64 >"$res/$name.jsonl" 2>>"$log" || echo "   exit $?" >>"$log"
    done
  done
done
for fused in 1 0; do  # where the time goes, per kernel (device time; launches = calls)
  echo "== profile fused=$fused" >>"$log"
  MAGELLANO_PROFILE=1 MAGELLANO_FUSED_DECODE=$fused "$cli" bench generate --json --config configs/phase1.json \
      --positions 100 --batches 1 --tokens 16 >"$res/profile_phase1_fused$fused.jsonl" 2>>"$log" || echo "   exit $?" >>"$log"
done
tar -czf "$OUT/decode_gpu.tar.gz" -C "$OUT" decode
echo "done: $OUT/decode_gpu.tar.gz" >>"$log"
