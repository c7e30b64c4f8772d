#!/usr/bin/env bash
# Runs on the GPU machine with .gpu carried (scripts/gpu_bundle.sh): device listing, the unit
# and op tests on the GPU, and the benchmark suite with cuBLAS's fp32 GEMM through PyTorch as
# the reference. Results go to $OUT (the device tool's output folder) or ./gpu-results.
# Usage: bash scripts/gpu_run.sh [tests|suite|qlora|fp16|tune|gemm|nf4-file|ssd|ssd-sweep|mamba2|all]  (default: all)
#   suite: torch_gemm.json (cuBLAS), then `magellano bench all --json` with cuBLAS's 4096 rate
#          as train-step's MFU reference, plus train-step for phase1, into suite_h100.jsonl
#          (copy it to benchmarks/results/suite_h100_<date>.jsonl).
#   qlora: gradient-checkpointing memory table (tiny, phase1), production3B QLoRA train-step at
#          1 x 512, and 10 production3B QLoRA training steps on tinyshakespeare (GPT-2 tokens
#          from $SHARED_DATA, default shared/data or ../shared/data)
#   fp16: train-step with fp32 and with fp16 parameters (train.param_dtype) for tiny and phase1
#         at 8 x 512 and production3B_full (every weight trained) at 4 x 512, into fp16_gpu.jsonl
#   nf4-file: `magellano quantize` end to end, NF4 then int4 (on all the host's threads), on a
#         generated production3B file (~13 GB in $TMPDIR)
#   tune: `magellano tune-gemm` for the GPU (CLBlast's tuners over TUNE_FRACTION of their
#         space, default 0.01, then cl/gemm_gpu.cl; killed after TUNE_TIMEOUT s, default 500), writing
#         $OUT/gemm_tuning.json: commit it as configs/tuning/<device-slug>.json and rebuild.
#   ssd: the unit and kernel tests on the GPU (TESTS=0 skips them), then `bench ssd` at its default
#        size (B 8, L 2048, H 16, P 64, N 64) with its default knobs and each variant of
#        SSD_VARIANTS (";"-separated option lists), mamba_ssm's Triton SSD as the peer
#        (scripts/ssd_peer.py; needs .peer/, see there) and cuBLAS's fp32 GEMM, into ssd_gpu.jsonl.
#   mamba2: the Mamba2 layer and model tests on the GPU (TESTS=0 skips them), then train-step at
#           8 x 512 of tiny / tiny_mamba2 and phase1 / phase1_mamba2 (CONFIGS=folder of the presets,
#           default configs) with cuBLAS's 4096 rate as the MFU reference, and phase1_mamba2's
#           decoding, into mamba2_gpu.jsonl.
#   ssd-sweep: `bench ssd` with MAGELLANO_PROFILE=1 (device time per kernel) at phase1_mamba2's size
#        (8, 512, 14, 64, 128) and the issue's (8, 2048, 16, 64, 64), once per option list of
#        VARIANTS (";"-separated, default: the defaults and --bwd-rows 2), into ssd_sweep.jsonl;
#        TRAIN=1 adds phase1 / phase1_mamba2 train-step at 8 x 512, twice each, into mamba2_gpu.jsonl.
#   gemm: `bench gemm` (squares and phase1's shapes), cl/gemm_gpu.cl and tuned CLBlast next to
#         CLBlast's database (GEMM_TUNING=FILE uses that file instead of the embedded one), and
#         cuBLAS through PyTorch. Neither is part of `all`.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu_env.sh
out=${OUT:-gpu-results}
what=${1:-all}
mkdir -p "$out"
magellano info --json > "$out/info.json" && magellano info | head -3
refname="cuBLAS fp32 sgemm 4096 (PyTorch, no TF32), same session"
# cuBLAS's fp32 GEMM rate at 4096 through PyTorch (0 when PyTorch is missing), measured now.
cublas_gflops() {
  python3 scripts/torch_gemm.py --jsonl "$out/torch_gemm.jsonl" > "$out/torch_gemm.json" \
    || echo "PyTorch comparison unavailable" >&2
  python3 -c "import json; print(json.load(open('$out/torch_gemm.json'))['gemm'][-1]['gflops'])" 2>/dev/null || echo 0
}
if [ "$what" = tests ] || [ "$what" = all ]; then
  test_unit --gtest_brief=1 2>&1 | tail -n 12
  MAGELLANO_TEST_DEVICE=gpu test_kernel --gtest_brief=1 2>&1 | tail -n 25
fi
if [ "$what" = suite ] || [ "$what" = all ]; then
  ref=$(cublas_gflops)
  [ -d shared/data ] && export MAGELLANO_SHARED_DATA="$PWD/shared/data"  # else tokenizer reports an error
  magellano bench all --device gpu --json --copy-mib 1024 --repeats 5 \
    --reference-gflops "$ref" --reference-name "$refname" > "$out/suite_h100.jsonl"
  magellano bench train-step --config configs/phase1.json --device gpu --json --batch 8 --steps 5 \
    --reference-gflops "$ref" --reference-name "$refname" >> "$out/suite_h100.jsonl"
  # Decoding tokens/s by position (100, 8000) and batch (1, 8) for phase1 (`all` runs tiny).
  magellano bench generate --config configs/phase1.json --device gpu --json --tokens 32 >> "$out/suite_h100.jsonl"
  magellano bench nf4 --device gpu --json --full 1 >> "$out/suite_h100.jsonl"
  cat "$out/torch_gemm.jsonl" >> "$out/suite_h100.jsonl" 2>/dev/null
  wc -l "$out/suite_h100.jsonl"
fi
if [ "$what" = qlora ] || [ "$what" = all ]; then
  for c in tiny phase1; do
    magellano bench checkpointing --device gpu --json --config configs/$c.json --batch 1 --seq-len 512 \
      --peak-size 2048 >> "$out/qlora_h100.jsonl"
  done
  # tokens/s and peak memory of production3B QLoRA at 1 x 512 (random tokens)
  magellano bench train-step --config configs/production3B.json --device gpu --json --batch 1 --steps 3 \
    --peak-size 2048 >> "$out/qlora_h100.jsonl"
  shared=${SHARED_DATA:-shared/data}
  [ -d "$shared" ] || shared=../shared/data
  mkdir -p "$out/qlora"
  magellano tokenize --tokenizer "$shared/gpt2" --in "$shared/corpus/tinyshakespeare.txt" \
    --out "$out/qlora/shakespeare" --val-fraction 0.05
  magellano train --config configs/production3B.json --device gpu --set train.steps=10 \
    --set train.warmup_steps=1 --set train.grad_accum=1 --set eval.batches=2 \
    --set data.train="$out/qlora/shakespeare.train.tok" --set data.val="$out/qlora/shakespeare.val.tok" \
    --set checkpoint.dir="$out/qlora/run" --set checkpoint.every=0 2>&1 | tail -n 20
  rm -rf "$out/qlora/run"/step-* "$out/qlora"/*.tok  # the adapter is ~150 MB; metrics.jsonl stays
fi
if [ "$what" = fp16 ]; then  # not part of `all`
  ref=$(cublas_gflops)
  for c in tiny phase1; do
    for d in fp32 fp16; do
      magellano bench train-step --config configs/$c.json --device gpu --json --batch 8 --steps 5 \
        --param-dtype $d --reference-gflops "$ref" --reference-name "$refname" >> "$out/fp16_gpu.jsonl"
    done
  done
  for d in fp32 fp16; do  # 3.3B parameters, every one trained: ~57 GiB (fp32) / ~45 GiB (fp16)
    magellano bench train-step --config configs/production3B_full.json --device gpu --json --batch 4 \
      --steps 2 --peak-size 2048 --param-dtype $d --reference-gflops "$ref" --reference-name "$refname" \
      >> "$out/fp16_gpu.jsonl"
  done
  wc -l "$out/fp16_gpu.jsonl"
fi
if [ "$what" = nf4-file ]; then
  magellano bench nf4 --device gpu --json --repeats 1 --file "${TMPDIR:-/tmp}" > "$out/bench_nf4_file.json"
fi
if [ "$what" = tune ]; then  # one command: stays under the device tool's 10 minutes
  timeout "${TUNE_TIMEOUT:-500}" magellano tune-gemm --device gpu --fraction "${TUNE_FRACTION:-0.01}" \
    --size "${TUNE_SIZE:-2048}" --repeats 5 \
    --shapes "4096x4096x4096,2048x2048x2048,4096x1792x448:nt,4096x448x1792,1792x448x4096:tn,4096x50257x448:nt" \
    --out "$out/gemm_tuning.json" 2>&1 | tail -n 40
fi
if [ "$what" = gemm ]; then  # GEMM_TUNING=FILE: a tuning file to use instead of the embedded one
  if [ -n "${GEMM_TUNING:-}" ]; then export MAGELLANO_GEMM_TUNING="$GEMM_TUNING"; fi
  magellano bench gemm --device gpu --json --repeats 10 --paths gpu_kernel,clblast,clblast_database \
    > "$out/bench_gemm.json"
  magellano bench gemm --device gpu --json --repeats 10 --shapes phase1 --tokens 4096 \
    --paths gpu_kernel,clblast,clblast_database > "$out/bench_gemm_phase1.json"
  python3 scripts/torch_gemm.py > "$out/torch_gemm.json" || echo "PyTorch comparison unavailable"
fi
if [ "$what" = ssd ]; then  # not part of `all`
  if [ "${TESTS:-1}" = 1 ]; then
    timeout 60 test_unit --gtest_brief=1 2>&1 | tail -n 8
    MAGELLANO_TEST_DEVICE=gpu timeout "${KERNEL_TEST_TIMEOUT:-240}" test_kernel --gtest_brief=1 2>&1 | tail -n 25
  fi
  python3 scripts/torch_gemm.py --jsonl "$out/torch_gemm.jsonl" > /dev/null && cat "$out/torch_gemm.jsonl" >> "$out/ssd_gpu.jsonl"
  IFS=';' read -ra variants <<< "${SSD_VARIANTS:-}"
  for v in "" "${variants[@]}"; do
    # shellcheck disable=SC2086
    timeout 120 magellano bench ssd --device gpu --json --host 0 --repeats 5 $v >> "$out/ssd_gpu.jsonl" \
      || echo "bench ssd $v failed"
  done
  [ -d .peer ] && timeout 240 python3 scripts/ssd_peer.py --src .peer >> "$out/ssd_gpu.jsonl"
  grep -h '"name": *"ssd_fwd' "$out/ssd_gpu.jsonl" | python3 -c "
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    print(r['name'], r.get('peer', 'magellano'), json.dumps(r['sizes']), '%.3f ms' % (r['median_s'] * 1e3),
          '%.0f GFLOP/s' % r.get('gflops', 0), ('%.1f%% of fp32 GEMM' % r['pct_of_peak']) if r.get('pct_of_peak') else '')
"
fi
if [ "$what" = ssd-sweep ]; then  # not part of `all`
  IFS=';' read -ra variants <<< "${VARIANTS:-;--bwd-rows 2}"
  for size in "--b 8 --l 512 --h 14 --p 64 --n 128 --g 1" "--b 8 --l 2048 --h 16 --p 64 --n 64 --g 1"; do
    for v in "${variants[@]}"; do
      # shellcheck disable=SC2086  # the sizes and variants are option lists
      MAGELLANO_PROFILE=1 timeout 60 magellano bench ssd --device gpu --json --host 0 --peak-size 2048 \
        $size $v >> "$out/ssd_sweep.jsonl" || echo "failed: $size $v"
    done
  done
  python3 -c "
import json
for l in open('$out/ssd_sweep.jsonl'):
    r = json.loads(l)
    if r['name'] == 'ssd_fwd_bwd':
        top = sorted(r['extra'].get('profile_one_step', []), key=lambda e: -e['device_ms'])[:4]
        print(r['sizes'], '%.3f ms' % (r['median_s'] * 1e3), ' '.join('%s %.2f' % (e['kernel'], e['device_ms']) for e in top))
"
  if [ "${TRAIN:-0}" = 1 ]; then
    for c in phase1 phase1_mamba2 phase1 phase1_mamba2; do
      timeout 100 magellano bench train-step --config "configs/$c.json" --device gpu --json --batch 8 --seq-len 512 \
        --steps 5 >> "$out/mamba2_gpu.jsonl" || echo "$c failed"
    done
  fi
fi
if [ "$what" = mamba2 ]; then  # not part of `all`
  # The Mamba2 tests on the GPU, then train-step of each Mamba2 preset next to its Mamba1 twin
  # (the same batch and length, the same session), and phase1_mamba2's decoding, into mamba2_gpu.jsonl
  # (copy it to benchmarks/results/mamba2_h100_<date>.jsonl).
  if [ "${TESTS:-1}" = 1 ]; then
    MAGELLANO_TEST_DEVICE=gpu timeout "${KERNEL_TEST_TIMEOUT:-300}" test_kernel --gtest_brief=1 \
      --gtest_filter='*Mamba2*:*ssd*:*Ssd*:*gated*:*Gated*:Model.*:Checkpointing.*' 2>&1 | tail -n 25
  fi
  ref=$(cublas_gflops)
  for c in tiny tiny_mamba2 phase1 phase1_mamba2; do
    timeout 120 magellano bench train-step --config "${CONFIGS:-configs}/$c.json" --device gpu --json --batch 8 \
      --seq-len 512 --steps 5 --reference-gflops "$ref" --reference-name "$refname" >> "$out/mamba2_gpu.jsonl" ||
      echo "$c failed"
  done
  timeout 120 magellano bench generate --config "${CONFIGS:-configs}/phase1_mamba2.json" --device gpu --json \
    --tokens 32 >> "$out/mamba2_gpu.jsonl" || echo "generate failed"
  python3 -c "
import json
for l in open('$out/mamba2_gpu.jsonl'):
    r = json.loads(l)
    print(r['name'], r['sizes'].get('config'), r['sizes'].get('batch'), '%.0f tokens/s' % r.get('tokens_per_s', 0),
          'MFU %.1f%%' % (100 * ((r.get('extra') or {}).get('mfu') or 0)))
"
fi
