#!/usr/bin/env bash
# Installs what is needed, builds, and runs the test suite on the default OpenCL device
# (PoCL's CPU device on a machine without a GPU), then the fuzz stage: every libFuzzer target
# (fuzz/) for a bounded time under ASan + UBSan (scripts/fuzz.sh --ci; MAGELLANO_SKIP_FUZZ=1
# skips it for quick local runs). Extra arguments go to ctest, e.g.
#   scripts/test.sh -L unit          only the quick host/runtime tests
#   scripts/test.sh -LE slow         everything but the long-running ones
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j"$(nproc)" "$@"
if [ "${MAGELLANO_SKIP_FUZZ:-0}" != 1 ]; then scripts/fuzz.sh --ci; fi
