#!/usr/bin/env bash
# Installs what is needed, builds, and runs the test suite on the default OpenCL device
# (PoCL's CPU device on a machine without a GPU). Extra arguments go to ctest, e.g.
#   scripts/test.sh -L unit          only the quick host/runtime tests
#   scripts/test.sh -LE slow         everything but the long-running ones
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j"$(nproc)" "$@"
