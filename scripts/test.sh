#!/usr/bin/env bash
# What CI runs (.ci/run): installs what is needed, builds, runs the test suite on the default
# OpenCL device (PoCL's CPU device on a machine without a GPU), then the sanitizer stage
# (scripts/sanitize.sh: the unit, data and kernel tests again under ASan + UBSan, then every
# libFuzzer target of fuzz/ for a bounded time in the same instrumented build).
# Extra arguments go to the first ctest, e.g.
#   scripts/test.sh -L unit          only the quick host/runtime tests
#   scripts/test.sh -LE slow         everything but the long-running ones
# Quick local runs (CI sets neither):
#   MAGELLANO_SKIP_SANITIZE=1        skips the sanitizer stage, fuzzing included
#   MAGELLANO_SKIP_FUZZ=1            runs the sanitized tests but not the fuzzers
set -euo pipefail
cd "$(dirname "$0")/.."
for flag in MAGELLANO_SKIP_SANITIZE MAGELLANO_SKIP_FUZZ; do
  value=${!flag:-0}
  if [ "$value" != 0 ] && [ "$value" != 1 ]; then
    echo "error: $flag is '$value'; set it to 1 to skip that stage, or 0" >&2
    exit 2
  fi
done
start=$SECONDS
# clang-16 (the sanitizer stage's compiler) before the normal suite: its PTX compile checks
# (tests/ops/test_nvidia_ptx.cpp) skip without it, and the sanitizer stage leaves them out.
if [ "${MAGELLANO_SKIP_SANITIZE:-0}" = 1 ]; then scripts/setup.sh; else scripts/setup.sh --sanitize; fi
scripts/build.sh
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j"$(nproc)" "$@"
echo "test: build and tests took $((SECONDS - start)) s"
if [ "${MAGELLANO_SKIP_SANITIZE:-0}" = 1 ]; then
  echo "test: sanitizer stage skipped (MAGELLANO_SKIP_SANITIZE=1)"
  exit 0
fi
start=$SECONDS
scripts/sanitize.sh
echo "test: sanitizer stage took $((SECONDS - start)) s"
