#!/usr/bin/env bash
# Prepares .gpu/ (git-ignored) for the GPU machine, which has NVIDIA's OpenCL driver but no
# OpenCL loader, CLBlast, Boost, cpp-httplib (magellano serve; it needs the libssl3 and zlib
# every such machine has) and cannot install packages: downloads those Debian packages
# here, unpacks their libraries into .gpu/lib, writes an ICD file naming NVIDIA's driver, and
# copies the built binaries from BUILD_DIR (default: build) into .gpu/bin.
# Usage: scripts/gpu_bundle.sh [BUILD_DIR]      then carry .gpu to the GPU machine and run
#        scripts/gpu_run.sh there.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
rm -rf .gpu && mkdir -p .gpu/debs .gpu/root .gpu/lib .gpu/bin .gpu/icd
# Open MPI's runtime libraries too: the binaries link libmpi (data-parallel training, src/dist/),
# which a single process loads without starting MPI.
(cd .gpu/debs && apt-get download -q ocl-icd-libopencl1 libclblast1 libboost-program-options1.74.0 clinfo \
  libcpp-httplib0.11 libbrotli1 libopenmpi3 libhwloc15 libevent-core-2.1-7 libevent-pthreads-2.1-7 libudev1 >/dev/null)
for deb in .gpu/debs/*.deb; do dpkg -x "$deb" .gpu/root; done
cp -a .gpu/root/usr/lib/x86_64-linux-gnu/*.so* .gpu/lib/
cp .gpu/root/usr/bin/clinfo .gpu/bin/
echo /usr/local/nvidia/lib64/libnvidia-opencl.so.1 > .gpu/icd/nvidia.icd
for f in "$build"/magellano "$build"/tests/test_*; do
  if [ -f "$f" ] && [ -x "$f" ]; then cp "$f" .gpu/bin/; fi
done
strip .gpu/bin/* 2>/dev/null || true
rm -rf .gpu/debs .gpu/root
du -sh .gpu
