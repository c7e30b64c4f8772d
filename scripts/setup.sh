#!/usr/bin/env bash
# Installs every Debian package Magellano needs to build, test and run on PoCL.
# Idempotent; run as root (or with sudo available). Usage: scripts/setup.sh
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
packages=(
  cmake g++ make pkg-config
  ocl-icd-opencl-dev opencl-clhpp-headers opencl-c-headers
  libclblast-dev pocl-opencl-icd clinfo
  libboost-program-options-dev nlohmann-json3-dev libgtest-dev
  libopenblas-dev           # reference BLAS for the CPU GEMM comparison in benchmarks
  fortunes                  # the quick start's corpus (plain English text)
)
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
