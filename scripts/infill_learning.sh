#!/usr/bin/env bash
# Blank infilling against causal training on tinyshakespeare (shared data folder): the disabled
# slow test Learning.DISABLED_BlankInfillingFillsSingleWordBlanksBetterThanCausal
# (tests/slow/test_learning.cpp: models, metric and bar are described there). Trains a causal and
# an infilling "MAE" model of width 96 for 300 steps of 4 x 128 tokens each (about 2.5 minutes
# on 2 CPU cores) and prints the mean ln p(true word) of single-word blanks for both, the unigram
# model and chance; the test fails while the infilling model does not beat the causal one by 0.2.
#   INFILL_TRAIN='{"objective": "blank_infilling", "infill_mode": "single"}'   the infilling run's
#       train section (merged into the config; default: objective_mix causal 1, blank_infilling 1);
#       it may set "steps" (and "warmup_steps") for a longer infilling run
#   INFILL_MODEL='{"infill_positions": "glm2d"}'   merged into the infilling model's model section
#   SKIP_CAUSAL=1   trains and scores the infilling model only
# Usage: [INFILL_TRAIN=json] [INFILL_MODEL=json] [SKIP_CAUSAL=1] scripts/infill_learning.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
[ -x "$build/tests/test_slow" ] || { echo "infill_learning: $build/tests/test_slow not built (scripts/build.sh)" >&2; exit 1; }
env ${INFILL_TRAIN:+MG_INFILL_TRAIN="$INFILL_TRAIN"} ${INFILL_MODEL:+MG_INFILL_MODEL="$INFILL_MODEL"} ${SKIP_CAUSAL:+MG_SKIP_CAUSAL=1} \
  "$build/tests/test_slow" --gtest_also_run_disabled_tests \
  --gtest_filter='Learning.DISABLED_BlankInfillingFillsSingleWordBlanksBetterThanCausal'
