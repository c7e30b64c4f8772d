#!/usr/bin/env bash
# Data-parallel gradient exchange after vs during the backward (train.allreduce_overlap): 2 ranks of
# configs/tiny.json (data as scripts/bench_data_parallel.sh makes it), batch 8 each, buckets of 64Ki
# values (16 buckets), 15 steps measured after 5. Prints one JSON line per mode. Root: Open MPI allow flags.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
w=$(mktemp -d)
common=(--config configs/tiny.json --set train.steps=15 --set train.log_every=5 --set eval.every=0 --set checkpoint.every=0 --set train.warmup_steps=1 --set train.batch_size=8 --set train.allreduce_bucket=65536)
for mode in false true; do
  mpirun --oversubscribe -np 2 ${BUILD_DIR:-build}/magellano train "${common[@]}" --set train.allreduce_overlap=$mode --set checkpoint.dir=$w/$mode > $w/$mode.log
  python3 - $w/$mode $mode <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1] + "/metrics.jsonl") if '"loss"' in l]
a, b = recs[0], recs[-1]
steps = b["step"] - a["step"]
secs = sum((r["tokens"] - p["tokens"]) / r["tokens_per_s"] for p, r in zip(recs, recs[1:]))
print(json.dumps({"config": "configs/tiny.json", "device": "PoCL on a shared 2-core Xeon", "ranks": 2, "batch_per_rank": 8,
  "allreduce_bucket": 65536, "allreduce_overlap": sys.argv[2] == "true", "steps_measured": steps, "step_s": secs / steps,
  "allreduce_s_per_step": (b["allreduce_seconds"] - a["allreduce_seconds"]) / steps,
  "early_buckets_per_step": (b.get("allreduce_early_buckets", 0) - a.get("allreduce_early_buckets", 0)) / steps,
  "final_loss": b["loss"]}))
PY
done
rm -rf $w
