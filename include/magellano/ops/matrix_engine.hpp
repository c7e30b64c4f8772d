// The device's matrix engine (tensor cores) as ops::gemm uses it for a context whose compute dtype
// (Context::set_compute_dtype, train.compute_dtype) is tf32 or bf16.
//
// Detection: an NVIDIA device of compute capability 8.0 or more (cl_nv_device_attribute_query),
// then a probe: cl/gemm_mma.cl must build with its inline PTX `mma.sync` and multiply an odd-sized
// product of each precision equal to a host reference of the rounded operands. Anything else, or
// MAGELLANO_MATRIX_ENGINE=0, leaves the engine off and every product in fp32, whatever the compute
// dtype says; `description` says why. The probes try the kernel's forms fastest first: packed
// operands staged by cp.async, packed operands staged through registers (both with ldmatrix and
// cvt), then the direct form: ldmatrix fragment loads with cvt rounding, 32-bit loads with cvt
// rounding, 32-bit loads with integer rounding; the first form whose probes of both precisions
// pass is used (MAGELLANO_MMA_PACKED=0, MAGELLANO_MMA_CP_ASYNC=0 and MAGELLANO_MMA_LDMATRIX=0
// skip those forms, for comparisons).
#pragma once
#include <string>

#include "magellano/runtime/compute_dtype.hpp"
#include "magellano/runtime/context.hpp"

namespace magellano::ops {

// A form of cl/gemm_mma.cl (the same results in every form).
struct MmaForm {
  bool emulate = false;   // fp32 FMAs in place of the mma instruction, no inline PTX: any device
  bool packed = false;    // operands first rounded into k-contiguous tiles (mma_pack), then multiplied
  bool cp_async = false;  // packed tiles staged by cp.async (hardware)
  bool ldmatrix = false;  // fragments through ldmatrix, else 32-bit local loads (hardware)
  bool ptx_cvt = false;   // operands rounded by cvt instructions, else integer arithmetic (hardware)
  std::string str() const;  // e.g. "packed operands, cp.async staging, ldmatrix fragment loads, cvt rounding"
};

struct MatrixEngine {
  bool bf16 = false;  // mma.m16n8k16.bf16 passed its probe
  bool tf32 = false;  // mma.m16n8k8.tf32 passed its probe
  MmaForm form;       // the form that passed
  bool direct_too = false;  // form is packed and its direct counterpart passed as well: products
                            // too small to repay the packing run direct (ops::gemm decides)
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

// The form a product of `ctx` runs in when mma_path is not none: the engine's, or the emulated one.
MmaForm mma_form(Context& ctx);

// Whether packing the operands first repays its cost for an m x n x k product (batch of them) in
// layout op(A) = Aᵀ (ta), op(B) = Bᵀ (tb). Measured on the H100 (benchmarks/README.md, "Tensor
// cores"): packing wins from about 4 GFLOP when an operand is transposed (the direct form stages
// it slowly), from about 16 GFLOP for A Bᵀ (both k-contiguous), and loses below.
bool packing_pays(int64_t batch, int64_t m, int64_t n, int64_t k, bool ta, bool tb);

// One line for `info` and the benchmarks: "fp32", "bf16 on the matrix engine (...)", or
// "fp32 (bf16 asked for; <why the engine is off>)".
std::string describe_compute_path(Context& ctx);

// Tests: run cl/gemm_mma.cl's emulated form (fp32 FMAs on the rounded operands, no inline PTX),
// direct or packed, for every later product of a context whose compute dtype is tf32 or bf16, on
// any device.
void force_mma_emulation(bool on, bool packed = false);

const char* to_string(ComputeDType d);                  // "fp32", "tf32", "bf16"
ComputeDType compute_dtype_from_string(const std::string& s);  // throws Error naming the choices

// x rounded as cl/gemm_mma.cl stages an operand: bf16 to nearest even, tf32 to nearest with ties
// away from zero (cvt.rna); fp32 unchanged.
float round_operand(float x, ComputeDType d);

}  // namespace magellano::ops
