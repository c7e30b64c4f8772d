#!/usr/bin/env bash
# The long load test of `magellano serve` (developer-only; CI runs the same test for 3 s): 64
# concurrent clients for SECONDS (default 60) against a real server process on 127.0.0.1, no error,
# every text equal to its prompt's text alone, every stream ending with [DONE], and afterwards an
# empty queue and batch and device memory back to its level after the first round.
# Usage: scripts/serve_load.sh [SECONDS]      (after a build into BUILD_DIR, default build)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
[ -x "$build/tests/test_kernel" ] || { echo "error: serve_load: build first ($build/tests/test_kernel is missing)" >&2; exit 1; }
MAGELLANO_SERVE_LOAD_SECONDS=${1:-60} "$build/tests/test_kernel" --gtest_filter='ServeTest.LoadSixtyFourClients'
