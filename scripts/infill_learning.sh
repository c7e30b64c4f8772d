#!/usr/bin/env bash
# Blank infilling against causal training on tinyshakespeare (shared data folder): the disabled
# slow test Learning.DISABLED_BlankInfillingFillsSingleWordBlanksBetterThanCausal
# (tests/slow/test_learning.cpp: models, metric and bar are described there). Trains a causal and
# an infilling "MAE" model of width 96 for 2,000 steps of 16 x 128 tokens each (about 20 s a model
# on an H100 or H200, over half an hour on 2 CPU cores; MAGELLANO_TEST_DEVICE picks the device) and
# prints the mean ln p(true word) of single-word blanks for both, the unigram model and chance; the
# test fails unless the infilling model beats the causal one by 0.2.
#   INFILL_BUDGET='{"steps": 300, "batch_size": 4}'   both runs' train section (the budget)
#   INFILL_TRAIN='{"objective_mix": {"causal": 1, "blank_infilling": 1}}'   the infilling run's train
#       section in place of the default (blank_infilling, spans of Poisson(1))
#   INFILL_MODEL='{"infill_positions": "sequential"}'   merged into the infilling model's model section
#   SKIP_CAUSAL=1   trains and scores the infilling model only
# Usage: [INFILL_TRAIN=json] [INFILL_MODEL=json] [INFILL_BUDGET=json] [SKIP_CAUSAL=1] scripts/infill_learning.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
[ -x "$build/tests/test_slow" ] || { echo "infill_learning: $build/tests/test_slow not built (scripts/build.sh)" >&2; exit 1; }
env ${INFILL_TRAIN:+MG_INFILL_TRAIN="$INFILL_TRAIN"} ${INFILL_BUDGET:+MG_INFILL_BUDGET="$INFILL_BUDGET"} ${INFILL_MODEL:+MG_INFILL_MODEL="$INFILL_MODEL"} ${SKIP_CAUSAL:+MG_SKIP_CAUSAL=1} \
  "$build/tests/test_slow" --gtest_also_run_disabled_tests \
  --gtest_filter='Learning.DISABLED_BlankInfillingFillsSingleWordBlanksBetterThanCausal'
