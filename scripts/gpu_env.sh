# Source on the GPU machine (from the repository root) after scripts/gpu_bundle.sh's .gpu/
# was carried there: points the OpenCL loader at NVIDIA's driver and the binaries at the
# carried libraries.
export LD_LIBRARY_PATH="$PWD/.gpu/lib:/usr/local/nvidia/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export OCL_ICD_VENDORS="$PWD/.gpu/icd"
export PATH="$PWD/.gpu/bin:$PATH"
export MAGELLANO_CACHE_DIR="${TMPDIR:-/tmp}/magellano-kernels"
export MAGELLANO_CLI="$PWD/.gpu/bin/magellano"  # for the tests that run the CLI as a process
export MAGELLANO_TEST_FIXTURES="$PWD/tests/fixtures"  # bitsandbytes / compressed-tensors fixtures of the NF4 / int4 tests
