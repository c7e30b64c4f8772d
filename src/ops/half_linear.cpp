#include "magellano/ops/half_linear.hpp"

#include "check.hpp"
#include "half_weights.hpp"
#include "magellano/ops/matmul.hpp"

namespace magellano::ops {

Tensor half_linear(const Tensor& x, const Tensor& w) {
  detail::require_f32(x, "half_linear", "x");
  detail::require_dtype(w, DType::f16, "half_linear", "w");
  if (w.shape().ndim() != 2 || x.shape().last() != w.size(1))
    throw Error("half_linear: x " + x.shape().str() + " does not match w " + w.shape().str() +
                " (need x: (..., in), w: (out, in)).");
  const int64_t rows = x.shape().rows(), in = w.size(1), out_dim = w.size(0);
  Tensor y = Tensor::empty(x.ctx(), x.shape().with_last(out_dim));
  gemm(x.view(Shape{rows, in}), false, detail::widen(w), true, y.view(Shape{rows, out_dim}));
  if (!autograd::any_requires_grad({x, w})) return y;
  auto mw = autograd::grad_meta(w);
  autograd::record(y, [mx = autograd::grad_meta(x), mw, w, x_saved = mw ? x : Tensor(), rows, in,
                       out_dim](const Tensor& dy) {
    const Tensor dy2 = dy.view(Shape{rows, out_dim});
    detail::add_weight_grad(mw, [&](const Tensor& dst, float beta) {  // (out, rows) x (rows, in)
      gemm(dy2, true, x_saved.view(Shape{rows, in}), false, dst, 1.0f, beta);
    });
    if (!mx) return;
    auto g = autograd::grad_target(mx);
    gemm(dy2, false, detail::widen(w), false, g.tensor.view(Shape{rows, in}), 1.0f,
         g.accumulate ? 1.0f : 0.0f);
  });
  return y;
}

}  // namespace magellano::ops
