// Launcher of cl/gemm_gpu.cl (see the kernel file for the tiling).
#include "gemm_gpu.hpp"

#include <algorithm>

#include "check.hpp"
#include "gemm_skinny.hpp"
#include "magellano/ops/launch.hpp"

namespace magellano::ops::detail {
namespace {
constexpr int64_t kTile = 128;  // BM = BN in cl/gemm_gpu.cl
}  // namespace

void gemm_gpu_kernel(const Tensor& a, bool ta, const Tensor& b, bool tb, const Tensor& c, float alpha,
                     float beta, const GemmShape& s, const GpuGemmParams& p) {
  Context& ctx = c.ctx();
  if (ctx.device().max_work_group_size < 256)
    throw Error("gemm: the GPU kernel needs work-groups of 256; " + ctx.device().name + " allows " +
                std::to_string(ctx.device().max_work_group_size) + ". Use MAGELLANO_GEMM=clblast.");
  require_int_sizes({s.m, s.n, s.k, s.lda, s.ldb, s.batch}, "gemm", "the GPU kernel");
  // float4 loads need 16-byte alignment of every row start of every batch.
  auto aligned = [](const Tensor& t, int64_t ld, int64_t stride) {
    return t.offset() % 4 == 0 && ld % 4 == 0 && stride % 4 == 0;
  };
  if (p.bk != 8 && p.bk != 16) throw Error("gemm: the GPU kernel's K step must be 8 or 16.");
  // Few output tiles and a long K (the weight gradients of narrow layers: 1792 x 448 at 4096
  // tokens is 56 tiles for the H100's 132 compute units): split K, and sum the splits.
  const auto [splits, per] = plan_k_split(ctx, s, kTile, 16);
  const Tensor w = splits > 1 ? Tensor::empty(ctx, Shape{splits * s.m * s.n}, DType::f32, MemCategory::scratch) : c;
  // Whole tiles, whole K steps in every split and aligned operands: the variant without any
  // bounds checks.
  const bool vec_a = aligned(a, s.lda, s.a_stride), vec_b = aligned(b, s.ldb, s.b_stride);
  const bool vec_c = w.offset() % 4 == 0 && s.n % 4 == 0;
  const bool whole = s.m % kTile == 0 && s.n % kTile == 0 && s.k % 16 == 0 && vec_a && vec_b && vec_c;
  const BuildOptions opts = BuildOptions().define("TA", ta).define("TB", tb).define("BK", p.bk)
      .define("DB", p.db).define("ALIGNED", whole).define("UNROLL", ctx.device().type != "cpu");
  const size_t global[3] = {static_cast<size_t>((s.n + kTile - 1) / kTile) * 256,
                            static_cast<size_t>((s.m + kTile - 1) / kTile),
                            static_cast<size_t>(s.batch * splits)};
  const size_t local[3] = {256, 1, 1};
  Launch(ctx, "gemm_gpu", "gemm_gpu", opts).arg(a).arg(int_size(s.lda)).arg(s.a_stride).arg(vec_a)
      .arg(b).arg(int_size(s.ldb)).arg(s.b_stride).arg(vec_b).arg(w).arg(vec_c)
      .arg(int_size(s.m)).arg(int_size(s.n)).arg(int_size(s.k)).arg(int_size(splits)).arg(int_size(per))
      .arg(splits > 1 ? 1.0f : alpha).arg(splits > 1 ? 0.0f : beta).run3d(global, local);
  if (splits > 1) sum_split_products(w, splits, s.m, s.n, c, s.n, 1, alpha, beta);
}

}  // namespace magellano::ops::detail
