#!/usr/bin/env bash
# Installs every Debian package Magellano needs to build, test and run on PoCL.
# Idempotent; run as root (or with sudo available).
# Usage: scripts/setup.sh              what the normal build, the tests and the CLI need
#        scripts/setup.sh --sanitize   also the sanitizer/fuzzing compiler (scripts/sanitize.sh)
set -euo pipefail
case "${1:-}" in
  ""|--sanitize) ;;
  *) echo "error: scripts/setup.sh: unknown argument '$1'; pass nothing or --sanitize" >&2; exit 2 ;;
esac
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
packages=(
  cmake g++ make pkg-config
  ocl-icd-opencl-dev opencl-clhpp-headers opencl-c-headers
  libclblast-dev pocl-opencl-icd clinfo
  libboost-program-options-dev nlohmann-json3-dev libgtest-dev
  libcpp-httplib-dev curl   # magellano serve's HTTP server (header-only) and its tests' client
  libopenblas-dev           # reference BLAS for the CPU GEMM comparison in benchmarks
  fortunes                  # the quick start's corpus (plain English text)
  openmpi-bin libopenmpi-dev  # data-parallel training (mpirun -np N magellano train); optional at build time
)
if [ "${1:-}" = "--sanitize" ]; then
  # clang 16, not bookworm's default 14 or 15: it captures structured bindings in lambdas (C++20),
  # as g++ 12 does. libclang-rt-16-dev holds the ASan, UBSan and libFuzzer runtimes; llvm-16 holds
  # llvm-symbolizer, which turns sanitizer reports' addresses into file:line.
  packages+=(clang-16 libclang-rt-16-dev llvm-16)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: all packages present"
