#!/usr/bin/env bash
# Tile sweep of the fused attention kernels (cl/attention.cl): `bench attention --json` once per
# option list of VARIANTS (";"-separated; an empty list = the defaults), with MAGELLANO_PROFILE=1
# (device time per kernel of one fwd + bwd), each result tagged with its options. Every binary of
# BINS (space-separated, default: magellano on PATH) runs every variant, so a baseline build can
# run in the same session. Results: $OUT/attention_sweep.jsonl (or ./attention-sweep-results).
# Usage: VARIANTS="; --rows 2; --bwd-block-q 32 --bwd-block-k 32" L=2048 scripts/attention_sweep.sh
set -euo pipefail
out=${OUT:-attention-sweep-results}
mkdir -p "$out"
bins=${BINS:-magellano}
IFS=';' read -r -a variants <<< "${VARIANTS:-}"
[ ${#variants[@]} -eq 0 ] && variants=("")
for bin in $bins; do
  for v in "${variants[@]}"; do
    # shellcheck disable=SC2086  # each variant is a list of options
    MAGELLANO_PROFILE=1 "$bin" bench attention --json --l "${L:-2048}" --repeats "${REPEATS:-5}" $v |
      python3 -c "
import json, sys
for line in sys.stdin:
    if line.strip():
        r = json.loads(line); r['variant'] = sys.argv[1].strip(); r['binary'] = sys.argv[2]; print(json.dumps(r))" "$v" "$(basename "$bin")" \
      >> "$out/attention_sweep.jsonl" || echo "{\"variant\": \"$v\", \"binary\": \"$bin\", \"failed\": true}" >> "$out/attention_sweep.jsonl"
  done
done
