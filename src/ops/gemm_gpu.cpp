// Launcher of cl/gemm_gpu.cl (see the kernel file for the tiling).
#include "gemm_gpu.hpp"

#include "magellano/ops/launch.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::ops::detail {
namespace {
constexpr int64_t kTile = 128;  // BM = BN in cl/gemm_gpu.cl
constexpr int64_t kIntMax = 2147483647;
}  // namespace

void gemm_gpu_kernel(const Tensor& a, bool ta, const Tensor& b, bool tb, const Tensor& c, float alpha,
                     float beta, const GemmShape& s) {
  Context& ctx = c.ctx();
  if (ctx.device().max_work_group_size < 256)
    throw Error("gemm: the GPU kernel needs work-groups of 256; " + ctx.device().name + " allows " +
                std::to_string(ctx.device().max_work_group_size) + ". Use MAGELLANO_GEMM=clblast.");
  for (int64_t v : {s.m, s.n, s.k, s.lda, s.ldb, s.batch})
    if (v > kIntMax) throw Error("gemm: a dimension above 2^31 - 1 is not supported by the GPU kernel.");
  // float4 loads need 16-byte alignment of every row start of every batch.
  auto aligned = [](const Tensor& t, int64_t ld, int64_t stride) {
    return t.offset() % 4 == 0 && ld % 4 == 0 && stride % 4 == 0;
  };
  const std::string opts = "-DTA=" + std::to_string(int(ta)) + " -DTB=" + std::to_string(int(tb));
  const size_t global[3] = {static_cast<size_t>((s.n + kTile - 1) / kTile) * 256,
                            static_cast<size_t>((s.m + kTile - 1) / kTile), static_cast<size_t>(s.batch)};
  const size_t local[3] = {256, 1, 1};
  Launch(ctx, "gemm_gpu", "gemm_gpu", opts).arg(a).arg(static_cast<int32_t>(s.lda)).arg(s.a_stride)
      .arg(static_cast<int32_t>(aligned(a, s.lda, s.a_stride)))
      .arg(b).arg(static_cast<int32_t>(s.ldb)).arg(s.b_stride)
      .arg(static_cast<int32_t>(aligned(b, s.ldb, s.b_stride)))
      .arg(c).arg(static_cast<int32_t>(s.m)).arg(static_cast<int32_t>(s.n)).arg(static_cast<int32_t>(s.k))
      .arg(alpha).arg(beta).run3d(global, local);
}

}  // namespace magellano::ops::detail
