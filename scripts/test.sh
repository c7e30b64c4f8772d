#!/usr/bin/env bash
# What CI runs (.ci/run): installs what is needed, builds, runs the test suite on the default
# OpenCL device (PoCL's CPU device on a machine without a GPU), then the sanitizer stage
# (scripts/sanitize.sh: the unit, data and kernel tests again under ASan + UBSan).
# Extra arguments go to the first ctest, e.g.
#   scripts/test.sh -L unit          only the quick host/runtime tests
#   scripts/test.sh -LE slow         everything but the long-running ones
# MAGELLANO_SKIP_SANITIZE=1 skips the sanitizer stage (quick local runs; CI never sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
skip=${MAGELLANO_SKIP_SANITIZE:-0}
if [ "$skip" != 0 ] && [ "$skip" != 1 ]; then
  echo "error: MAGELLANO_SKIP_SANITIZE is '$skip'; set it to 1 to skip the sanitizer stage, or 0" >&2
  exit 2
fi
start=$SECONDS
scripts/setup.sh
scripts/build.sh
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j"$(nproc)" "$@"
echo "test: build and tests took $((SECONDS - start)) s"
if [ "$skip" = 1 ]; then
  echo "test: sanitizer stage skipped (MAGELLANO_SKIP_SANITIZE=1)"
  exit 0
fi
start=$SECONDS
scripts/sanitize.sh
echo "test: sanitizer stage took $((SECONDS - start)) s"
