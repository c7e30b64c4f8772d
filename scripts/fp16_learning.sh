#!/usr/bin/env bash
# fp32 vs fp16 parameters in training, on real text: trains `tiny` on tinyshakespeare (from the
# shared data folder) with a tokenizer of 8k trained on it, 600 steps of 8 x 128 tokens, at three
# learning-rate schedules (peak 3e-3, 6e-4 and 1e-4, each cosine-decayed to a tenth), with
#   fp32 parameters | fp16 parameters rounded to nearest | fp16 rounded stochastically
# RUNS (default "fp32 fp16-nearest fp16-stochastic") may also name bf16 and tf32: fp32 parameters
# with train.compute_dtype bf16 / tf32 (matrix products on the tensor cores; on a device without
# them those runs equal fp32). LRS (default "3e-3 6e-4 1e-4") picks the peaks.
# It writes one JSON line per run (final validation loss, tokens/s, peak memory) to
# benchmarks/results/fp16_learning_<LABEL>_<date>.jsonl (LABEL defaults to pocl). About 20
# minutes on 2 CPU cores.
# Usage: [LABEL=name] scripts/fp16_learning.sh [BUILD_DIR] [--device D]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
m="$build/magellano"
shared=${MAGELLANO_SHARED_DATA:-../shared/data}
text="$shared/corpus/tinyshakespeare.txt"
[ -f "$text" ] || { echo "fp16_learning: $text not found; set MAGELLANO_SHARED_DATA" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$m" train-tokenizer --in "$text" --vocab-size 8192 --out "$work/tok" > /dev/null
"$m" tokenize --tokenizer "$work/tok" --in "$text" --out "$work/ts" --val-fraction 0.1 > /dev/null
out="benchmarks/results/fp16_learning_${LABEL:-pocl}_$(date +%F).jsonl"
: > "$out"
for lr in ${LRS:-3e-3 6e-4 1e-4}; do
  min_lr=$(python3 -c "print($lr / 10)")
  for run in ${RUNS:-fp32 fp16-nearest fp16-stochastic}; do
    sets=(--set train.steps=600 --set train.lr=$lr --set train.min_lr=$min_lr --set eval.every=100)
    case $run in
      fp16-*) sets+=(--set train.param_dtype=fp16 --set train.loss_scaling=true --set train.fp16_rounding=${run#fp16-}) ;;
      bf16 | tf32) sets+=(--set train.compute_dtype=$run) ;;
      fp32) ;;
      *) echo "fp16_learning: unknown run '$run' (fp32, fp16-nearest, fp16-stochastic, bf16, tf32)" >&2; exit 1 ;;
    esac
    "$m" train --config configs/tiny.json --set data.train="$work/ts.train.tok" --set data.val="$work/ts.val.tok" \
      --set data.tokenizer=null --set checkpoint.dir="$work/$run-$lr" "${sets[@]}" "$@" > "$work/log" 2>&1 \
      || { cat "$work/log" >&2; exit 1; }
    device=$(sed -n 's/^device: //p' "$work/log" | head -n 1)
    python3 - "$work/$run-$lr/metrics.jsonl" "$run" "$lr" "$min_lr" "$device" >> "$out" <<'EOF'
import json, sys
path, run, lr, min_lr, device = sys.argv[1:]
rows = [json.loads(l) for l in open(path)]
val = [r for r in rows if "val_loss" in r]
train = [r for r in rows if "loss" in r]
print(json.dumps({"name": "fp16_learning", "device": device, "run": run, "lr": float(lr), "min_lr": float(min_lr),
                  "steps": train[-1]["step"], "val_loss_by_step": {str(r["step"]): r["val_loss"] for r in val},
                  "final_val_loss": val[-1]["val_loss"], "final_train_loss": train[-1]["loss"],
                  "tokens_per_s": sum(r["tokens_per_s"] for r in train) / len(train),
                  "peak_device_bytes": train[-1]["peak_device_bytes"]}))
EOF
    tail -n 1 "$out"
  done
done
echo "wrote $out"
