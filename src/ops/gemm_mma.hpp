// ops::gemm on the matrix engine (private to src/ops): cl/gemm_mma.cl.
#pragma once
#include "gemm_cpu.hpp"
#include "magellano/runtime/compute_dtype.hpp"

namespace magellano::ops::detail {

// C = alpha * op(A) op(B) + beta * C with the operands rounded to `precision` (tf32 or bf16) and
// fp32 accumulation; 128 x 128 tiles per work-group of 256, split K when few tiles cover a long K.
// emulate: the kernel's portable form (no inline PTX), for tests on any device; ldmatrix: fragments
// through ldmatrix, ptx_cvt: operands rounded by cvt (both hardware only; the same results).
// Never reads c when beta == 0.
void gemm_mma_kernel(const Tensor& a, bool ta, const Tensor& b, bool tb, const Tensor& c, float alpha,
                     float beta, const GemmShape& s, ComputeDType precision, bool emulate, bool ldmatrix,
                     bool ptx_cvt);

}  // namespace magellano::ops::detail
