// GPUs' kernel for narrow products beside CLBlast (private to src/ops; used by ops::gemm).
#pragma once
#include "gemm_cpu.hpp"

namespace magellano::ops::detail {

// cl/gemm_skinny.cl, for one matrix (s.batch == 1) with min(m, n) at most kSkinnySide:
// a tiled kernel over the narrow side, splitting K across work-groups (and a reduction pass)
// when the output alone would leave the device's compute units idle.
void gemm_skinny(const Tensor& a, bool ta, const Tensor& b, bool tb, const Tensor& c, float alpha,
                 float beta, const GemmShape& s);

// C = alpha * sum over q < splits of w[q] + beta * C: the second pass of a GEMM split along K.
// w holds splits partial (m, n) products one after the other; C(i, j) is at i * c_rs + j * c_cs.
void sum_split_products(const Tensor& w, int64_t splits, int64_t m, int64_t n, const Tensor& c,
                        int64_t c_rs, int64_t c_cs, float alpha, float beta);

// How a tiled GEMM (tile x tile outputs per work-group) splits K: with few output tiles and a
// long K (the weight gradients of narrow layers), enough splits to fill the device once (two
// work-groups per compute unit), slices of at least 256 rounded up to `granule`; else one.
struct KSplit {
  int64_t splits, per;  // splits slices of `per` (the last may be shorter)
};
KSplit plan_k_split(const Context& ctx, const GemmShape& s, int64_t tile, int64_t granule);

}  // namespace magellano::ops::detail
