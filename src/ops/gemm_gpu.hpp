// ops::gemm's kernel for GPUs beside CLBlast (private to src/ops): cl/gemm_gpu.cl.
#pragma once
#include "gemm_cpu.hpp"

namespace magellano::ops::detail {

// 128 x 128 tiles of C per work-group of 256 (devices allowing work-groups of 256), batched
// with a batched or shared B. Never reads c when beta == 0.
void gemm_gpu_kernel(const Tensor& a, bool ta, const Tensor& b, bool tb, const Tensor& c, float alpha,
                     float beta, const GemmShape& s, const GpuGemmParams& p);

}  // namespace magellano::ops::detail
