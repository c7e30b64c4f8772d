// ops::gemm's CPU kernel and the route every GEMM takes (private to src/ops). Shapes as in
// matmul.hpp's gemm: a, b, c row-major (batch, rows, cols), contiguous per matrix.
#pragma once
#include "magellano/ops/gemm_tuning.hpp"
#include "magellano/tensor/tensor.hpp"

namespace magellano::ops::detail {

struct GemmShape {
  int64_t batch, m, n, k;
  int64_t lda, ldb;            // row strides of a and b as stored
  int64_t a_stride, b_stride;  // elements between batches; b_stride 0 when b is shared
};

// cl/gemm_cpu.cl: pack op(A) and op(B) into panels, then one launch per K block. Never reads
// c when beta == 0.
void gemm_cpu_kernel(const Tensor& a, bool ta, const Tensor& b, bool tb, const Tensor& c,
                     float alpha, float beta, const GemmShape& s, const CpuGemmParams& p);

// What the next GEMM runs: the device's choice plus the forced settings and environment
// overrides (no copy of the CLBlast parameters: this is called once per GEMM).
struct GemmRoute {
  GemmPath path;
  bool skinny;
  CpuGemmParams cpu;
  GpuGemmParams gpu;
};
GemmRoute effective_gemm_choice(Context& ctx);

}  // namespace magellano::ops::detail
