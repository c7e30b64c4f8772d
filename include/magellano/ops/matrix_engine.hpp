// The device's matrix engine (tensor cores) as ops::gemm uses it for a context whose compute dtype
// (Context::set_compute_dtype, train.compute_dtype) is tf32 or bf16.
//
// Detection: an NVIDIA device of compute capability 8.0 or more (cl_nv_device_attribute_query),
// then a probe: cl/gemm_mma.cl must build with its inline PTX `mma.sync` and multiply an odd-sized
// product of each precision equal to a host reference of the rounded operands. Anything else, or
// MAGELLANO_MATRIX_ENGINE=0, leaves the engine off and every product in fp32, whatever the compute
// dtype says; `description` says why. The probes try the kernel's forms fastest first: ldmatrix
// fragment loads with cvt rounding, 32-bit loads with cvt rounding, 32-bit loads with integer
// rounding; the first form whose probes of both precisions pass is used (MAGELLANO_MMA_LDMATRIX=0
// skips the ldmatrix form, for comparisons).
#pragma once
#include <string>

#include "magellano/runtime/compute_dtype.hpp"
#include "magellano/runtime/context.hpp"

namespace magellano::ops {

struct MatrixEngine {
  bool bf16 = false;  // mma.m16n8k16.bf16 passed its probe
  bool tf32 = false;  // mma.m16n8k8.tf32 passed its probe
  bool ldmatrix = false;  // fragments through ldmatrix (else 32-bit local loads)
  bool ptx_cvt = false;   // operands rounded by cvt instructions (else integer arithmetic)
  std::string description;  // what was found, or why the engine is off
};

// Why a device has no matrix engine without probing it ("" when the probe decides).
std::string matrix_engine_precheck(const DeviceInfo& d);

// Detected once per device (the probe runs on the first call).
const MatrixEngine& matrix_engine(Context& ctx);

// Where a product of `ctx` with its compute dtype runs: none (fp32 paths: fp32 asked for, or the
// engine lacks that precision), hardware (the mma instructions) or emulated (force_mma_emulation).
enum class MmaPath { none, hardware, emulated };
MmaPath mma_path(Context& ctx);

// One line for `info` and the benchmarks: "fp32", "bf16 on the matrix engine (...)", or
// "fp32 (bf16 asked for; <why the engine is off>)".
std::string describe_compute_path(Context& ctx);

// Tests: run cl/gemm_mma.cl's emulated form (fp32 FMAs on the rounded operands, no inline PTX) for
// every later product of a context whose compute dtype is tf32 or bf16, on any device.
void force_mma_emulation(bool on);

const char* to_string(ComputeDType d);                  // "fp32", "tf32", "bf16"
ComputeDType compute_dtype_from_string(const std::string& s);  // throws Error naming the choices

// x rounded as cl/gemm_mma.cl stages an operand: bf16 to nearest even, tf32 to nearest with ties
// away from zero (cvt.rna); fp32 unchanged.
float round_operand(float x, ComputeDType d);

}  // namespace magellano::ops
