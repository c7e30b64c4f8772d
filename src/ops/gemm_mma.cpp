// Launcher of cl/gemm_mma.cl (see the kernel file for the tiling and the fragment layouts).
#include "gemm_mma.hpp"

#include <algorithm>

#include "check.hpp"
#include "gemm_skinny.hpp"
#include "magellano/ops/launch.hpp"

namespace magellano::ops::detail {
namespace {
constexpr int64_t kTile = 128;  // BM = BN in cl/gemm_mma.cl
}  // namespace

void gemm_mma_kernel(const Tensor& a, bool ta, const Tensor& b, bool tb, const Tensor& c, float alpha,
                     float beta, const GemmShape& s, ComputeDType precision, bool emulate, bool ldmatrix,
                     bool ptx_cvt) {
  Context& ctx = c.ctx();
  if (precision == ComputeDType::fp32) throw Error("gemm: the matrix-engine kernel runs tf32 or bf16 only.");
  if (ctx.device().max_work_group_size < 256)
    throw Error("gemm: the matrix-engine kernel needs work-groups of 256; " + ctx.device().name + " allows " +
                std::to_string(ctx.device().max_work_group_size) + ".");
  require_int_sizes({s.m, s.n, s.k, s.lda, s.ldb, s.batch}, "gemm", "the matrix-engine kernel");
  const int64_t bk = precision == ComputeDType::bf16 ? 32 : 16;  // the kernel's K step
  // Few output tiles and a long K (weight gradients of narrow layers): split K, and sum the splits.
  const auto [splits, per] = plan_k_split(ctx, s, kTile, bk);
  const Tensor w = splits > 1 ? Tensor::empty(ctx, Shape{splits * s.m * s.n}, DType::f32, MemCategory::scratch) : c;
  auto aligned = [](const Tensor& t, int64_t ld, int64_t stride) {
    return t.offset() % 4 == 0 && ld % 4 == 0 && stride % 4 == 0;
  };
  const BuildOptions opts = BuildOptions().define("TA", ta).define("TB", tb)
      .define("PREC", precision == ComputeDType::bf16 ? 1 : 2).define("EMULATE", emulate).define("LDMATRIX", ldmatrix && !emulate)
      .define("PTX_CVT", ptx_cvt && !emulate);
  const size_t global[3] = {static_cast<size_t>((s.n + kTile - 1) / kTile) * 256,
                            static_cast<size_t>((s.m + kTile - 1) / kTile),
                            static_cast<size_t>(s.batch * splits)};
  const size_t local[3] = {256, 1, 1};
  Launch(ctx, "gemm_mma", "gemm_mma", opts).arg(a).arg(int_size(s.lda)).arg(s.a_stride)
      .arg(aligned(a, s.lda, s.a_stride)).arg(b).arg(int_size(s.ldb)).arg(s.b_stride)
      .arg(aligned(b, s.ldb, s.b_stride)).arg(w).arg(int_size(s.m)).arg(int_size(s.n)).arg(int_size(s.k))
      .arg(int_size(splits)).arg(int_size(per)).arg(splits > 1 ? 1.0f : alpha)
      .arg(splits > 1 ? 0.0f : beta).run3d(global, local);
  if (splits > 1) sum_split_products(w, splits, s.m, s.n, c, s.n, 1, alpha, beta);
}

}  // namespace magellano::ops::detail
