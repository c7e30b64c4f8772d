// Launcher of cl/gemm_skinny.cl: C = alpha * op(A) op(B) + beta * C for one matrix with a
// narrow side (see gemm_skinny.hpp).
#include <algorithm>
#include <utility>

#include "check.hpp"
#include "gemm_skinny.hpp"
#include "magellano/ops/launch.hpp"

namespace magellano::ops::detail {
namespace {
constexpr int64_t kTM = 64, kTN = 16, kTK = 16;  // the tile of cl/gemm_skinny.cl
}  // namespace

void gemm_skinny(const Tensor& a, bool ta, const Tensor& b, bool tb, const Tensor& c, float alpha,
                 float beta, const GemmShape& s) {
  if (s.batch != 1) throw Error("gemm_skinny: one matrix at a time.");
  Context& ctx = c.ctx();
  // Every operand as (row stride, column stride): A(i, p), B(p, j), C(i, j).
  int64_t m = s.m, n = s.n;
  int64_t a_rs = ta ? 1 : s.lda, a_cs = ta ? s.lda : 1;
  int64_t b_rs = tb ? 1 : s.ldb, b_cs = tb ? s.ldb : 1;
  int64_t c_rs = s.n, c_cs = 1;
  const Tensor* pa = &a;
  const Tensor* pb = &b;
  if (m < n) {  // the tile is narrow in N: compute Cᵀ = op(B)ᵀ op(A)ᵀ
    std::swap(pa, pb);
    std::swap(m, n);
    const int64_t ars = a_rs, acs = a_cs;
    a_rs = b_cs, a_cs = b_rs;
    b_rs = acs, b_cs = ars;
    std::swap(c_rs, c_cs);
  }
  const int64_t k = s.k;
  require_int_sizes({m, n, k, a_rs, a_cs, b_rs, b_cs, c_rs, c_cs}, "gemm", "the skinny kernel");
  const int64_t tiles = ((m + kTM - 1) / kTM) * ((n + kTN - 1) / kTN);
  // Split K when the tiles would leave compute units idle (4 work-groups per unit wanted), in
  // slices of at least 256.
  const int64_t want = 4 * std::max<int64_t>(1, ctx.device().compute_units);
  int64_t splits = 1;
  if (tiles < want && k >= 512) splits = std::min((want + tiles - 1) / tiles, k / 256);
  const int64_t per = ((k + splits - 1) / splits + kTK - 1) / kTK * kTK;
  splits = (k + per - 1) / per;
  // Partial tiles of each split (scratch; the queue keeps it alive until the kernels ran).
  const Tensor w = splits > 1 ? Tensor::empty(ctx, Shape{splits * m * n}, DType::f32, MemCategory::scratch) : c;
  Launch(ctx, "gemm_skinny", "gemm_skinny").arg(*pa).arg(int_size(a_rs)).arg(int_size(a_cs))
      .arg(*pb).arg(int_size(b_rs)).arg(int_size(b_cs)).arg(c).arg(int_size(c_rs)).arg(int_size(c_cs))
      .arg(w).arg(int_size(m)).arg(int_size(n)).arg(int_size(k)).arg(int_size(per)).arg(alpha).arg(beta)
      .run2d(static_cast<size_t>(tiles) * 256, static_cast<size_t>(splits), 256, 1);
  if (splits > 1) sum_split_products(w, splits, m, n, c, c_rs, c_cs, alpha, beta);
}

void sum_split_products(const Tensor& w, int64_t splits, int64_t m, int64_t n, const Tensor& c,
                        int64_t c_rs, int64_t c_cs, float alpha, float beta) {
  require_int_sizes({splits, m, n, c_rs, c_cs}, "gemm", "the split-K sum");
  Launch(c.ctx(), "gemm_skinny", "gemm_skinny_reduce").arg(w).arg(int_size(splits)).arg(int_size(m))
      .arg(int_size(n)).arg(c).arg(int_size(c_rs)).arg(int_size(c_cs)).arg(alpha).arg(beta)
      .run(static_cast<size_t>(m * n));
}

KSplit plan_k_split(const Context& ctx, const GemmShape& s, int64_t tile, int64_t granule) {
  const int64_t tiles = ((s.n + tile - 1) / tile) * ((s.m + tile - 1) / tile);
  const int64_t want = 2 * std::max<int64_t>(1, ctx.device().compute_units);
  int64_t splits = 1;
  if (s.batch == 1 && tiles * 2 <= want && s.k >= 512) splits = std::min(want / tiles, s.k / 256);
  const int64_t per = ((s.k + splits - 1) / splits + granule - 1) / granule * granule;
  return {(s.k + per - 1) / per, per};
}

}  // namespace magellano::ops::detail
