// ops::gemm on the matrix engine (private to src/ops): cl/gemm_mma.cl.
#pragma once
#include "gemm_cpu.hpp"
#include "magellano/ops/matrix_engine.hpp"
#include "magellano/runtime/compute_dtype.hpp"

namespace magellano::ops::detail {

// C = alpha * op(A) op(B) + beta * C with the operands rounded to `precision` (tf32 or bf16) and
// fp32 accumulation; 128 x 128 tiles per work-group of 256, split K when few tiles cover a long K;
// in `form` (MmaForm: emulated or hardware, direct or packed; the same results). Never reads c
// when beta == 0.
void gemm_mma_kernel(const Tensor& a, bool ta, const Tensor& b, bool tb, const Tensor& c, float alpha,
                     float beta, const GemmShape& s, ComputeDType precision, const MmaForm& form);

}  // namespace magellano::ops::detail
