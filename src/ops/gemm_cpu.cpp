// Launcher of cl/gemm_cpu.cl (see the kernel file for the layout of the packed panels).
#include <algorithm>

#include "check.hpp"
#include "gemm_cpu.hpp"
#include "magellano/ops/launch.hpp"

namespace magellano::ops::detail {
namespace {
constexpr int64_t kNR = 16;  // columns per tile: NR in cl/gemm_cpu.cl
}  // namespace

void gemm_cpu_kernel(const Tensor& a, bool ta, const Tensor& b, bool tb, const Tensor& c,
                     float alpha, float beta, const GemmShape& s, const CpuGemmParams& p) {
  Context& ctx = c.ctx();
  const int64_t mr = p.mr, pm = (s.m + mr - 1) / mr, pn = (s.n + kNR - 1) / kNR;
  const int64_t b_batches = s.b_stride == 0 ? 1 : s.batch;
  require_int_sizes({s.m, s.n, s.k, s.lda, s.ldb, pm * pn}, "gemm", "the CPU kernel");
  const BuildOptions opts = BuildOptions().define("MR", mr);
  // K is packed in chunks of kp columns so that the panels stay within p.pack_bytes (all of K
  // at once except for the LM head, whose panels grow with the vocabulary).
  const int64_t per_k = (s.batch * pm * mr + b_batches * pn * kNR) * 4;
  int64_t kp = s.k;
  if (per_k * kp > p.pack_bytes) {  // equal chunks, each a multiple of 16 within the bound
    const int64_t most = std::max<int64_t>(16, p.pack_bytes / per_k / 16 * 16);
    const int64_t chunks = (s.k + most - 1) / most;
    kp = ((s.k + chunks - 1) / chunks + 15) / 16 * 16;
  }
  // Packed panels (scratch, freed on return; the queue keeps them alive until the kernels ran).
  Tensor ap = Tensor::empty(ctx, Shape{s.batch * pm * mr * kp}, DType::f32, MemCategory::scratch);
  Tensor bp = Tensor::empty(ctx, Shape{b_batches * pn * kNR * kp}, DType::f32, MemCategory::scratch);
  const int64_t mblock = std::max<int64_t>(1, std::min<int64_t>(p.mblock, pm));
  const int64_t mblocks = (pm + mblock - 1) / mblock;
  const size_t tile_global[3] = {static_cast<size_t>(mblock), static_cast<size_t>(pn),
                                 static_cast<size_t>(mblocks * s.batch)};
  const size_t one[3] = {1, 1, 1}, pack_local[3] = {64, 1, 1};
  bool first = true;
  for (int64_t c0 = 0; c0 < s.k; c0 += kp) {
    const int64_t kc_chunk = std::min(kp, s.k - c0);
    const size_t kx = static_cast<size_t>((kc_chunk + 63) / 64 * 64);
    const size_t ga[3] = {kx, static_cast<size_t>(pm), static_cast<size_t>(s.batch)};
    Launch(ctx, "gemm_cpu", "gemm_pack_a", opts).arg(a).arg(s.lda).arg(s.a_stride).arg(ta)
        .arg(s.m).arg(c0).arg(kc_chunk).arg(ap).run3d(ga, pack_local);
    const size_t gb[3] = {kx, static_cast<size_t>(pn), static_cast<size_t>(b_batches)};
    Launch(ctx, "gemm_cpu", "gemm_pack_b", opts).arg(b).arg(s.ldb).arg(s.b_stride).arg(tb)
        .arg(s.n).arg(c0).arg(kc_chunk).arg(bp).run3d(gb, pack_local);
    // Within a chunk, launches of p.kc columns each (all of the chunk when p.kc is 0).
    const int64_t kc = p.kc > 0 ? std::min<int64_t>(p.kc, kc_chunk) : kc_chunk;
    for (int64_t k0 = 0; k0 < kc_chunk; k0 += kc) {
      Launch(ctx, "gemm_cpu", "gemm_tile", opts).arg(ap).arg(bp).arg(c).arg(s.n).arg(s.m * s.n)
          .arg(s.m).arg(s.n).arg(kc_chunk).arg(k0).arg(std::min(kc, kc_chunk - k0))
          .arg(s.b_stride != 0).arg(mblocks).arg(alpha).arg(first ? beta : 1.0f)
          .run3d(tile_global, one);
      first = false;
    }
  }
}

}  // namespace magellano::ops::detail
