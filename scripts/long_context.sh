#!/usr/bin/env bash
# Long context on one device (issue 17's measurements), into $OUT/long_context.jsonl (or
# ./long-context-results):
#   1. `bench train-step` of a hybrid preset at 1 x LONG and 1 x SHORT tokens, with gradient
#      checkpointing "balanced" (tokens/s, peak memory against `info`'s estimate);
#   2. `bench generate` at positions POSITIONS, batch 1, for three stacks of the preset's width and
#      depth: pure Mamba (every A replaced by M), the preset itself (hybrid), and attention-heavy
#      (every M replaced by A);
#   3. `magellano train` of that preset for 2 steps at 1 x LONG (a real run through the trainer:
#      its tokens/s and its checkpoint), then `magellano eval` of that checkpoint at LONG and SHORT
#      on the same tokens (wall time per token).
# Usage: TOKENS=file.u16 scripts/long_context.sh    (the magellano on PATH runs everything)
#   CONFIG     the hybrid preset (default configs/glm_small.json; layers written as (....)xN)
#   TOKENS     a token file of at least LONG + 1 tokens (.tok, or uint16 .u16), for train and eval
#   LONG       default 32768      SHORT  default 2048      POSITIONS  default 100,8000,32000
#   DEVICE     passed as --device when set      VOCAB  overrides model.vocab_size (to match TOKENS)
set -euo pipefail
config=${CONFIG:-configs/glm_small.json}
tokens=${TOKENS:?TOKENS must name a token file of at least LONG + 1 tokens}
long=${LONG:-32768}
short=${SHORT:-2048}
positions=${POSITIONS:-100,8000,32000}
out=${OUT:-long-context-results}
mkdir -p "$out"
results="$out/long_context.jsonl"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dev=()
[ -n "${DEVICE:-}" ] && dev=(--device "$DEVICE")

# The derived configs: the preset with checkpointing and this token file; its three stacks.
python3 - "$config" "$tokens" "$work" "$long" "${VOCAB:-}" <<'EOF'
import json, sys
config, tokens, work, long_len, vocab = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
c = json.load(open(config))
if vocab:
    c["model"]["vocab_size"] = int(vocab)
c["data"] = {"train": tokens, "val": tokens, "tokenizer": c.get("data", {}).get("tokenizer", "")}
if not c["data"]["tokenizer"]:
    del c["data"]["tokenizer"]
t = c.setdefault("train", {})
t.update({"gradient_checkpointing": "balanced", "batch_size": 1, "grad_accum": 1, "seq_len": long_len,
          "steps": 2, "warmup_steps": 1, "log_every": 1})
c["eval"] = {"every": 1000000, "batches": 1}
c["checkpoint"] = {"dir": work + "/ckpt", "every": 1000000}
json.dump(c, open(work + "/hybrid.json", "w"), indent=1)
layers = c["model"]["layers"]
for name, pattern in [("mamba", layers.replace("A", "M")), ("attention", layers.replace("M", "A"))]:
    d = json.loads(json.dumps(c))
    d["model"]["layers"] = pattern
    json.dump(d, open(work + "/" + name + ".json", "w"), indent=1)
EOF

echo "== train-step at 1 x $long and 1 x $short" >&2
for L in "$long" "$short"; do
  magellano bench train-step "${dev[@]}" --json --config "$work/hybrid.json" --batch 1 --seq-len "$L" --steps 2 \
    >> "$results"
done

echo "== decoding at positions $positions" >&2
for stack in mamba hybrid attention; do
  magellano bench generate "${dev[@]}" --json --config "$work/$stack.json" --positions "$positions" --batches 1 \
    | python3 -c "import json,sys; [print(json.dumps(dict(json.loads(l), stack='$stack'))) for l in sys.stdin if l.strip()]" \
    >> "$results"
done
echo "== train 2 steps at 1 x $long, then eval at $long and $short" >&2
start=$(date +%s.%N)
magellano train "${dev[@]}" --config "$work/hybrid.json" > "$work/train.log"
end=$(date +%s.%N)
python3 - "$work/train.log" "$start" "$end" "$long" >> "$results" <<'EOF'
import json, sys
lines = [l for l in open(sys.argv[1]) if l.strip()]
print(json.dumps({"name": "long_context_train", "seq_len": int(sys.argv[4]), "steps": 2,
                  "wall_s": float(sys.argv[3]) - float(sys.argv[2]), "log_tail": lines[-4:]}))
EOF
ckpt=$(ls -d "$work"/ckpt/step-* "$work"/ckpt/*/ 2>/dev/null | sort | tail -1)
for L in "$long" "$short"; do
  batch=$(( long / L ))  # the same tokens at both lengths
  start=$(date +%s.%N)
  magellano eval "${dev[@]}" --json --checkpoint "$ckpt" --tokens "$tokens" --seq-len "$L" --batch "$batch" > "$work/eval.json"
  end=$(date +%s.%N)
  python3 - "$work/eval.json" "$start" "$end" "$L" "$batch" >> "$results" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
wall = float(sys.argv[3]) - float(sys.argv[2])
print(json.dumps({"name": "long_context_eval", "seq_len": int(sys.argv[4]), "batch": int(sys.argv[5]),
                  "wall_s": wall, "tokens": r["tokens"], "loss": r["loss"], "tokens_per_s_incl_load": r["tokens"] / wall}))
EOF
done

echo "results: $results" >&2
