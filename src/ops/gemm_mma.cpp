// Launcher of cl/gemm_mma.cl (see the kernel file for the tiling, the forms and the fragment layouts).
#include "gemm_mma.hpp"

#include <algorithm>

#include "check.hpp"
#include "gemm_skinny.hpp"
#include "magellano/ops/launch.hpp"

namespace magellano::ops::detail {
namespace {

constexpr int64_t kTile = 128;      // BM = BN in cl/gemm_mma.cl
constexpr int64_t kPackRows = 64;   // mma_pack's block: 64 rows x 32 k
constexpr int64_t kPackK = 32;      // kp is a multiple of this (and of both precisions' BK)

int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

bool aligned(const Tensor& t, int64_t ld, int64_t stride) {
  return t.offset() % 4 == 0 && ld % 4 == 0 && stride % 4 == 0;
}

// op(X) (rows x k, stored (rows, k) when kcontig, else (k, rows)) of each of `batch` matrices ->
// (batch, rows_p, kp) operand bits, zero-padded (cl/gemm_mma.cl mma_pack).
Tensor pack(const Tensor& x, bool kcontig, int64_t ld, int64_t stride, int64_t batch, int64_t rows, int64_t k,
            int64_t rows_p, int64_t kp, const BuildOptions& opts, ComputeDType precision) {
  Context& ctx = x.ctx();
  const DType bits = precision == ComputeDType::bf16 ? DType::f16 : DType::f32;  // 2- or 4-byte words
  Tensor out = Tensor::empty(ctx, Shape{batch, rows_p, kp}, bits, MemCategory::scratch);
  const size_t global[3] = {static_cast<size_t>(kp / kPackK * 256), static_cast<size_t>(rows_p / kPackRows),
                            static_cast<size_t>(batch)};
  const size_t local[3] = {256, 1, 1};
  Launch(ctx, "gemm_mma", "mma_pack", opts).arg(x).arg(int_size(ld)).arg(stride).arg(int(kcontig))
      .arg(aligned(x, ld, stride)).arg(int_size(rows)).arg(int_size(k)).arg(out).arg(int_size(rows_p))
      .arg(int_size(kp)).run3d(global, local);
  return out;
}

}  // namespace

void gemm_mma_kernel(const Tensor& a, bool ta, const Tensor& b, bool tb, const Tensor& c, float alpha,
                     float beta, const GemmShape& s, ComputeDType precision, const MmaForm& form) {
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
  const bool hw = !form.emulate;
  const BuildOptions opts = BuildOptions().define("TA", ta && !form.packed).define("TB", tb && !form.packed)
      .define("PREC", precision == ComputeDType::bf16 ? 1 : 2).define("EMULATE", form.emulate)
      .define("LDMATRIX", form.ldmatrix && hw).define("PTX_CVT", form.ptx_cvt && hw)
      .define("CP_ASYNC", form.cp_async && form.packed && hw);
  const size_t global[3] = {static_cast<size_t>((s.n + kTile - 1) / kTile) * 256,
                            static_cast<size_t>((s.m + kTile - 1) / kTile),
                            static_cast<size_t>(s.batch * splits)};
  const size_t local[3] = {256, 1, 1};
  const float kernel_alpha = splits > 1 ? 1.0f : alpha, kernel_beta = splits > 1 ? 0.0f : beta;
  if (form.packed) {
    // op(A) is k-contiguous in memory unless transposed; op(B) only when transposed.
    const int64_t mp = round_up(s.m, kTile), np = round_up(s.n, kTile), kp = round_up(s.k, kPackK);
    const int64_t b_batch = s.b_stride == 0 ? 1 : s.batch;
    const Tensor ap = pack(a, !ta, s.lda, s.a_stride, s.batch, s.m, s.k, mp, kp, opts, precision);
    const Tensor bp = pack(b, tb, s.ldb, s.b_stride, b_batch, s.n, s.k, np, kp, opts, precision);
    Launch(ctx, "gemm_mma", "gemm_mma_packed", opts).arg(ap).arg(mp * kp).arg(bp)
        .arg(b_batch == 1 ? int64_t{0} : np * kp).arg(w).arg(int_size(s.m)).arg(int_size(s.n))
        .arg(int_size(kp)).arg(int_size(splits)).arg(int_size(per)).arg(kernel_alpha).arg(kernel_beta)
        .run3d(global, local);
  } else {
    Launch(ctx, "gemm_mma", "gemm_mma", opts).arg(a).arg(int_size(s.lda)).arg(s.a_stride)
        .arg(aligned(a, s.lda, s.a_stride)).arg(b).arg(int_size(s.ldb)).arg(s.b_stride)
        .arg(aligned(b, s.ldb, s.b_stride)).arg(w).arg(int_size(s.m)).arg(int_size(s.n)).arg(int_size(s.k))
        .arg(int_size(splits)).arg(int_size(per)).arg(kernel_alpha).arg(kernel_beta).run3d(global, local);
  }
  if (splits > 1) sum_split_products(w, splits, s.m, s.n, c, s.n, 1, alpha, beta);
}

}  // namespace magellano::ops::detail
