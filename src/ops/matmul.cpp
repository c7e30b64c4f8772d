#include "magellano/ops/matmul.hpp"

#include <clblast.h>

#include <algorithm>

#include "check.hpp"
#include "gemm_cpu.hpp"
#include "gemm_gpu.hpp"
#include "gemm_mma.hpp"
#include "gemm_skinny.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/half_linear.hpp"
#include "magellano/ops/launch.hpp"
#include "magellano/ops/matrix_engine.hpp"
#include "magellano/ops/reduce.hpp"

namespace magellano::ops {
namespace {

struct Mat {  // a tensor seen as `batch` row-major (rows, cols) matrices
  int64_t batch, rows, cols;
};

Mat as_matrices(const Tensor& t) {
  const Shape& s = t.shape();
  if (s.ndim() < 2) throw Error("matmul: tensors need at least 2 dimensions, got " + s.str());
  const int64_t per = s[-2] * s[-1];
  return {per != 0 ? s.numel() / per : 1, s[-2], s[-1]};
}

// Up to this many rows of C, gemm runs one GEMV per row instead of one GEMM. Measured on PoCL
// (2-core CPU), phase1's (M, 448) x (448, 50257) LM head: GEMM 500 ms at M = 1 and 585 ms at
// M = 8 (padded to its tile either way); GEMV 109 ms per row. So only a single row gains.
constexpr int64_t kGemvRows = 1;

}  // namespace

void gemm(const Tensor& a, bool ta, const Tensor& b, bool tb, const Tensor& c, float alpha,
          float beta) {
  const Mat A = as_matrices(a), B = as_matrices(b), C = as_matrices(c);
  const int64_t m = ta ? A.cols : A.rows, k = ta ? A.rows : A.cols;
  const int64_t n = tb ? B.rows : B.cols, kb = tb ? B.cols : B.rows;
  if (k != kb || C.rows != m || C.cols != n || A.batch != C.batch ||
      (B.batch != C.batch && B.batch != 1))
    throw Error("gemm: shapes " + a.shape().str() + (ta ? "^T" : "") + " x " + b.shape().str() +
                (tb ? "^T" : "") + " -> " + c.shape().str() + " do not match.");
  if (c.numel() == 0) return;
  if (k == 0) {  // an empty sum: C = beta * C
    if (beta == 0.0f) fill(c, 0.0f);
    else if (beta != 1.0f) scale_into(c, beta, c, false);
    return;
  }
  Context& ctx = c.ctx();
  const detail::GemmRoute choice = detail::effective_gemm_choice(ctx);
  const detail::GemmShape s{C.batch, m, n, k, A.cols, B.cols, A.rows * A.cols,
                            B.batch == 1 ? 0 : B.rows * B.cols};
  // tf32 / bf16 compute on a matrix engine: every product but single rows (decoding) and, where
  // the skinny kernel is on, narrow outputs (their cost is reading the operands, not the products).
  if (const MmaPath mma = mma_path(ctx); mma != MmaPath::none && !(C.batch == 1 && m <= kGemvRows) &&
      !(choice.skinny && C.batch == 1 && std::min(m, n) <= kSkinnySide)) {
    MmaForm form = mma_form(ctx);
    if (!form.emulate && form.packed && matrix_engine(ctx).direct_too && !packing_pays(s.batch, m, n, k, ta, tb))
      form.packed = form.cp_async = false;
    detail::gemm_mma_kernel(a, ta, b, tb, c, alpha, beta, s, ctx.compute_dtype(), form);
    return;
  }
  if (choice.path == GemmPath::cpu_kernel) {
    detail::gemm_cpu_kernel(a, ta, b, tb, c, alpha, beta, s, choice.cpu);
    return;
  }
  // A narrow output (LoRA's rank-r factors and their gradients): measured on the H100 at 4096
  // tokens, 2-5x faster than CLBlast's GEMM. A short K alone is not enough: there CLBlast
  // was faster (117 vs 155 us at 4096 x 2048 x 16).
  if (choice.skinny && C.batch == 1 && m > kGemvRows && std::min(m, n) <= kSkinnySide) {
    detail::gemm_skinny(a, ta, b, tb, c, alpha, beta, s);
    return;
  }
  if (choice.path == GemmPath::gpu_kernel && !(C.batch == 1 && m <= kGemvRows)) {
    detail::gemm_gpu_kernel(a, ta, b, tb, c, alpha, beta, s, choice.gpu);
    return;
  }
  if (beta == 0.0f) fill(c, 0.0f);  // CLBlast computes beta * C: never let poison through
  const auto layout = clblast::Layout::kRowMajor;
  const auto opa = ta ? clblast::Transpose::kYes : clblast::Transpose::kNo;
  const auto opb = tb ? clblast::Transpose::kYes : clblast::Transpose::kNo;
  clblast::StatusCode st;
  ctx.profiler().span_begin();
  if (C.batch == 1 && m <= kGemvRows) {
    // A few rows (decoding one sequence): one matrix-vector product per row of C. CLBlast's
    // GEMM pads M to its tile (64 or more); GEMV reads op(B) once per row.
    st = clblast::StatusCode::kSuccess;
    for (int64_t i = 0; i < m && st == clblast::StatusCode::kSuccess; ++i) {
      const size_t x_off = a.offset() + (ta ? i : i * A.cols);  // row i of op(A)
      const size_t x_inc = ta ? A.cols : 1;
      // y = op(B)^T x: B (k, n) row-major is transposed; B (n, k) (tb) is not.
      st = clblast::Gemv<float>(layout, tb ? clblast::Transpose::kNo : clblast::Transpose::kYes, B.rows,
                                B.cols, alpha, b.buffer(), b.offset(), B.cols, a.buffer(), x_off, x_inc, beta,
                                c.buffer(), c.offset() + i * n, 1, ctx.queue_ptr(), nullptr);
    }
    ctx.profiler().span_end("clblast_gemv");
    check_clblast(static_cast<int>(st), "SGEMV", "multiplying " + a.shape().str() + " by " + b.shape().str());
    return;
  }
  if (C.batch == 1) {
    st = clblast::Gemm<float>(layout, opa, opb, m, n, k, alpha, a.buffer(), a.offset(), A.cols,
                              b.buffer(), b.offset(), B.cols, beta, c.buffer(), c.offset(), n,
                              ctx.queue_ptr(), nullptr);
  } else {
    st = clblast::GemmStridedBatched<float>(
        layout, opa, opb, m, n, k, alpha, a.buffer(), a.offset(), A.cols, A.rows * A.cols,
        b.buffer(), b.offset(), B.cols, B.batch == 1 ? 0 : B.rows * B.cols, beta, c.buffer(),
        c.offset(), n, m * n, C.batch, ctx.queue_ptr(), nullptr);
  }
  // Products with a side of 64 or less (LoRA's rank-r factors, small experts) apart from the rest.
  ctx.profiler().span_end(std::min({m, n, k}) <= 64 ? "clblast_gemm_skinny" : "clblast_gemm");
  check_clblast(static_cast<int>(st), C.batch == 1 ? "SGEMM" : "SGEMM (strided batched)",
                "multiplying " + a.shape().str() + " by " + b.shape().str());
}

Tensor matmul(const Tensor& a_in, const Tensor& b, bool ta, bool tb, const Tensor& bias) {
  detail::require_f32(a_in, "matmul", "a");
  detail::require_f32(b, "matmul", "b");
  // A batched a with a 2-D b: fold a's batch into its rows (needs !ta).
  Tensor a = a_in;
  const Shape a_shape = a_in.shape();
  const bool fold = a_shape.ndim() > 2 && b.shape().ndim() == 2;
  if (fold) {
    if (ta) throw Error("matmul: a batched, transposed a with a 2-D b is not supported.");
    a = a_in.view(Shape{a_shape.rows(), a_shape.last()});
  } else if (a_shape.ndim() != b.shape().ndim() ||
             (a_shape.ndim() > 2 && as_matrices(a).batch != as_matrices(b).batch)) {
    throw Error("matmul: batch dimensions of " + a_shape.str() + " and " + b.shape().str() +
                " differ.");
  }
  const Mat A = as_matrices(a), B = as_matrices(b);
  const int64_t m = ta ? A.cols : A.rows, k = ta ? A.rows : A.cols;
  const int64_t n = tb ? B.rows : B.cols, kb = tb ? B.cols : B.rows;
  if (k != kb)
    throw Error("matmul: inner dimensions differ: " + a_shape.str() + (ta ? "^T" : "") + " x " +
                b.shape().str() + (tb ? "^T" : "") + ".");
  std::vector<int64_t> out_dims = fold ? a_shape.dims() : a.shape().dims();
  out_dims[out_dims.size() - 2] = fold ? out_dims[out_dims.size() - 2] : m;
  out_dims.back() = n;
  Tensor out = Tensor::empty(a.ctx(), Shape(out_dims));
  Tensor out2 = fold ? out.view(Shape{m, n}) : out;
  if (bias.defined()) {
    detail::require_f32(bias, "matmul", "bias");
    if (bias.numel() != n)
      throw Error("matmul: bias has " + std::to_string(bias.numel()) + " values for " +
                  std::to_string(n) + " output columns.");
    Launch(a.ctx(), "elementwise", "broadcast_rows").arg(bias).arg(out).arg(out.numel()).arg(n)
        .run(out.numel());
    gemm(a, ta, b, tb, out2, 1.0f, 1.0f);
  } else {
    gemm(a, ta, b, tb, out2, 1.0f, 0.0f);
  }

  if (autograd::any_requires_grad({a_in, b, bias})) {
    auto ma = autograd::grad_meta(a_in), mb = autograd::grad_meta(b),
         mbias = autograd::grad_meta(bias);
    Tensor saved_a = mb ? a : Tensor(), saved_b = ma ? b : Tensor();
    autograd::record(out, [=](const Tensor& dy_in) {
      Tensor dy = fold ? dy_in.view(Shape{m, n}) : dy_in;
      if (ma) {  // dA = dC op(B)^T   or, when ta, dA = op(B) dC^T
        auto g = autograd::grad_target(ma);
        Tensor da = fold ? g.tensor.view(a.shape()) : g.tensor;
        float beta = g.accumulate ? 1.0f : 0.0f;
        if (!ta) gemm(dy, false, saved_b, !tb, da, 1.0f, beta);
        else gemm(saved_b, tb, dy, true, da, 1.0f, beta);
      }
      if (mb) {  // dB = op(A)^T dC   or, when tb, dB = dC^T op(A)
        auto g = autograd::grad_target(mb);
        float beta = g.accumulate ? 1.0f : 0.0f;
        if (!tb) gemm(saved_a, !ta, dy, false, g.tensor, 1.0f, beta);
        else gemm(dy, true, saved_a, ta, g.tensor, 1.0f, beta);
      }
      if (mbias) {
        auto g = autograd::grad_target(mbias);
        colsum_into(dy, n, g.tensor, 1.0f, g.accumulate);
      }
    });
  }
  return out;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  if (!w.defined() || w.dtype() != DType::f16) return matmul(x, w, false, true, bias);
  const Tensor y = half_linear(x, w);
  return bias.defined() ? add(y, bias) : y;
}

}  // namespace magellano::ops
