// GPUs' kernel for narrow products beside CLBlast (private to src/ops; used by ops::gemm).
#pragma once
#include "gemm_cpu.hpp"

namespace magellano::ops::detail {

// cl/gemm_skinny.cl, for one matrix (s.batch == 1) with min(m, n) at most kSkinnySide:
// a tiled kernel over the narrow side, splitting K across work-groups (and a reduction pass)
// when the output alone would leave the device's compute units idle.
void gemm_skinny(const Tensor& a, bool ta, const Tensor& b, bool tb, const Tensor& c, float alpha,
                 float beta, const GemmShape& s);

}  // namespace magellano::ops::detail
