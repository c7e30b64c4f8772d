#!/usr/bin/env bash
# ZeRO stage 1's reduce-scatter against the all-reduce, with and without the overlapped exchange:
# 2 ranks of configs/tiny.json (data as scripts/bench_data_parallel.sh makes it), batch 8 each,
# buckets of 64 Ki values, STEPS steps (default 15) measured after the first 5. Per mode
# (train.zero_stage 0 / 1 x train.allreduce_overlap false / true) one JSON line: step time, the
# gradient exchange's time left after the backward, the bytes rank 0 sends per step for the
# gradients (grad_exchange_bytes: all-reduce or reduce-scatter, Collective::bytes_sent's count)
# and, with ZeRO, for the updated parameters' broadcast and the norm's partial sums
# (zero_share_bytes), and the final loss (equal in all four modes: the tests require it bit for
# bit). Timing on a shared CPU host is noisy; the byte counts are exact.
#   scripts/bench_zero.sh            env: BUILD_DIR (build), STEPS (15), OUT (a .jsonl to append to)
# Runs as root with Open MPI's allow flags.
set -euo pipefail
cd "$(dirname "$0")/.."
m=${BUILD_DIR:-build}/magellano
steps=${STEPS:-15}
if [ ! -f data/tiny.train.tok ]; then
  corpus=$(ls /usr/share/games/fortunes/* | grep -vE '\.(dat|u8)$')
  mkdir -p data
  [ -f data/tokenizer-8k/vocab.bpe ] || "$m" train-tokenizer --in $corpus --vocab-size 8192 --out data/tokenizer-8k >/dev/null
  "$m" tokenize --tokenizer data/tokenizer-8k --in $corpus --out data/tiny --val-fraction 0.05 >/dev/null
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
work=$(mktemp -d /tmp/magellano-zero-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
common=(--config configs/tiny.json --set train.steps=$steps --set train.log_every=5 --set eval.every=0
        --set checkpoint.every=0 --set train.warmup_steps=1 --set train.batch_size=8
        --set train.allreduce_bucket=65536)
for zero in 0 1; do
  for overlap in false true; do
    run=$work/z$zero-$overlap
    mpirun --oversubscribe -np 2 "$m" train "${common[@]}" --set train.zero_stage=$zero \
      --set train.allreduce_overlap=$overlap --set checkpoint.dir=$run > $run.log 2>&1 ||
      { cat $run.log >&2; exit 1; }
    python3 - $run $zero $overlap <<'PY' | tee -a "${OUT:-/dev/null}"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1] + "/metrics.jsonl") if '"loss"' in l]
a, b = recs[0], recs[-1]
steps = b["step"] - a["step"]
secs = sum((r["tokens"] - p["tokens"]) / r["tokens_per_s"] for p, r in zip(recs, recs[1:]))
per = lambda key: (b.get(key, 0) - a.get(key, 0)) / steps
print(json.dumps({"config": "configs/tiny.json", "device": "PoCL on a shared 2-core Xeon", "ranks": 2,
  "batch_per_rank": 8, "allreduce_bucket": 65536, "zero_stage": int(sys.argv[2]),
  "allreduce_overlap": sys.argv[3] == "true", "steps_measured": steps, "step_s": secs / steps,
  "exchange_s_per_step": per("allreduce_seconds"), "grad_exchange_bytes_per_step": per("grad_exchange_bytes"),
  "zero_share_s_per_step": per("zero_share_seconds"), "zero_share_bytes_per_step": per("zero_share_bytes"),
  "early_buckets_per_step": per("allreduce_early_buckets"), "final_loss": b["loss"]}))
PY
  done
done
