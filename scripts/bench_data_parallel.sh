#!/usr/bin/env bash
# Data-parallel training on the CPU: step time of 1 rank with batch 2B against 2 ranks with batch B
# (the same global batch, `mpirun -np 2`), the gradient all-reduce's share of the step, and the
# all-reduce path's rate (gradient bytes per second through device read, MPI sum, device write)
# next to the host's copy bandwidth (`magellano bench copy` on PoCL: host memory, read + write);
# and the time ranks wait for the slowest one before the exchange (load imbalance); then 2 ranks
# with ZeRO stage 1 (train.zero_stage 1): the updated parameters' broadcast per step and the peak
# device memory of rank 0 (its share of the moments).
#
#   scripts/bench_data_parallel.sh [CONFIG]     (default configs/tiny.json; data as scripts/quickstart.sh makes it)
#   env: BUILD_DIR (build), STEPS (25), BATCH (per rank, 8), OUT (a .jsonl to append the results to)
# Prints one JSON line per run. Runs as root with Open MPI's allow flags.
set -euo pipefail
cd "$(dirname "$0")/.."
m=${BUILD_DIR:-build}/magellano
config=${1:-configs/tiny.json}
steps=${STEPS:-25}
batch=${BATCH:-8}
if [ "$config" = configs/tiny.json ] && [ ! -f data/tiny.train.tok ]; then
  corpus=$(ls /usr/share/games/fortunes/* | grep -vE '\.(dat|u8)$')
  mkdir -p data
  [ -f data/tokenizer-8k/vocab.bpe ] || "$m" train-tokenizer --in $corpus --vocab-size 8192 --out data/tokenizer-8k >/dev/null
  "$m" tokenize --tokenizer data/tokenizer-8k --in $corpus --out data/tiny --val-fraction 0.05 >/dev/null
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
work=$(mktemp -d /tmp/magellano-dp-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
copy_gbps=$("$m" bench copy --json 2>/dev/null | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["gbps"])')
common=(--config "$config" --set train.steps=$steps --set train.log_every=5 --set eval.every=0
        --set checkpoint.every=0 --set train.warmup_steps=1)
"$m" train "${common[@]}" --set train.batch_size=$((2 * batch)) --set checkpoint.dir="$work/one" > "$work/one.log"
mpirun --oversubscribe -np 2 "$m" train "${common[@]}" --set train.batch_size=$batch \
  --set checkpoint.dir="$work/two" > "$work/two.log"
mpirun --oversubscribe -np 2 "$m" train "${common[@]}" --set train.batch_size=$batch --set train.zero_stage=1 \
  --set checkpoint.dir="$work/zero" > "$work/zero.log"
for run in one two zero; do
  python3 - "$work/$run" "$work/$run.log" "$copy_gbps" "$config" <<'PY'
import json, re, sys
run, log, copy_gbps, config = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
text = open(log).read()
params = int(re.search(r"trainable parameters: (\d+)", text).group(1))
m = re.search(r"global batch (\d+) x (\d+) x (\d+)", text)
ranks = int(m.group(3)) if m else 1
recs = [json.loads(l) for l in open(run + "/metrics.jsonl") if '"loss"' in l]
# The first interval holds the start (kernel builds, first allocations): measured from the second.
later = recs[1:]
steps = later[-1]["step"] - recs[0]["step"]
tokens = later[-1]["tokens"] - recs[0]["tokens"]
seconds = sum((r["tokens"] - p["tokens"]) / r["tokens_per_s"] for p, r in zip(recs, later))
ar = later[-1].get("allreduce_seconds", 0.0) - recs[0].get("allreduce_seconds", 0.0)
wait = later[-1].get("rank_wait_seconds", 0.0) - recs[0].get("rank_wait_seconds", 0.0)
share = later[-1].get("zero_share_seconds", 0.0) - recs[0].get("zero_share_seconds", 0.0)
grad_bytes = params * 4  # fp32 gradients
out = {"config": config, "device": "PoCL on a shared 2-core Xeon", "ranks": ranks,
       "steps_measured": steps, "tokens_per_s": tokens / seconds, "step_s": seconds / steps,
       "allreduce_s_per_step": ar / steps, "allreduce_share_of_step": ar / seconds,
       "rank_wait_s_per_step": wait / steps, "rank_wait_share_of_step": wait / seconds,
       "gradient_bytes": grad_bytes,
       "allreduce_path_gbps": grad_bytes / (ar / steps) / 1e9 if ar > 0 else None,
       "host_copy_gbps": copy_gbps, "final_loss": recs[-1]["loss"],
       "zero_stage": 1 if "zero_share_seconds" in recs[-1] else 0,
       "zero_share_s_per_step": share / steps, "zero_share_of_step": share / seconds,
       "peak_device_bytes_rank0": recs[-1]["peak_device_bytes"]}
print(json.dumps(out))
PY
done | tee -a "${OUT:-/dev/null}"
