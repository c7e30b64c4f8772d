#!/usr/bin/env bash
# The main job on a fresh Debian machine, with no downloads: installs what is needed, builds,
# trains a GPT-2-style byte-level BPE tokenizer on the plain English text of Debian's
# `fortunes` package, tokenizes it (5% held out for validation), trains the `tiny` model on
# the default OpenCL device (PoCL's CPU device without a GPU), evaluates the result and prints
# a generated sample.
# Extra arguments go to `magellano train`, e.g. --set train.steps=100 or --device gpu.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
m=${BUILD_DIR:-build}/magellano
"$m" info | head -n 3
corpus=$(ls /usr/share/games/fortunes/* | grep -vE '\.(dat|u8)$')
mkdir -p data
if [ ! -f data/tokenizer-8k/vocab.bpe ]; then
  "$m" train-tokenizer --in $corpus --vocab-size 8192 --out data/tokenizer-8k
fi
if [ ! -f data/tiny.train.tok ]; then
  "$m" tokenize --tokenizer data/tokenizer-8k --in $corpus --out data/tiny --val-fraction 0.05
fi
"$m" train --config configs/tiny.json "$@"
last=$(ls -d checkpoints/tiny/step-* | sort -V | tail -n 1)
"$m" eval --checkpoint "$last" --tokens data/tiny.val.tok
echo "A sample from $last (temperature 0.8, top-k 40):"
"$m" generate --checkpoint "$last" --prompt "The" --max-new-tokens 60 --temperature 0.8 --top-k 40 --seed 1
echo
