#!/usr/bin/env bash
# The main job on a fresh machine: installs what is needed, builds, lists the OpenCL devices,
# and trains a small network on the default device (PoCL's CPU device without a GPU) to show
# the ops and autograd working end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
build=${BUILD_DIR:-build}
"$build/magellano" info
"$build/magellano" demo "$@"
