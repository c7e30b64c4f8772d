#include "magellano/ops/frozen_linear.hpp"

#include "check.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/launch.hpp"
#include "magellano/ops/matmul.hpp"

namespace magellano::ops {
namespace {

Tensor widen(const Tensor& w) {  // (out, in) f16 -> f32 scratch
  Tensor w32 = Tensor::empty(w.ctx(), w.shape(), DType::f32, MemCategory::scratch);
  if (w.numel() > 0)
    Launch(w.ctx(), "elementwise", "f16_to_f32").arg(w).arg(w32).arg(w.numel()).run(w.numel());
  return w32;
}

}  // namespace

Tensor half_linear(const Tensor& x, const Tensor& w) {
  detail::require_f32(x, "half_linear", "x");
  detail::require_dtype(w, DType::f16, "half_linear", "w");
  if (w.shape().ndim() != 2 || x.shape().last() != w.size(1))
    throw Error("half_linear: x " + x.shape().str() + " does not match w " + w.shape().str() +
                " (need x: (..., in), w: (out, in)).");
  const int64_t rows = x.shape().rows(), in = w.size(1), out_dim = w.size(0);
  Tensor y = Tensor::empty(x.ctx(), x.shape().with_last(out_dim));
  {
    Tensor w32 = widen(w);
    gemm(x.view(Shape{rows, in}), false, w32, true, y.view(Shape{rows, out_dim}));
  }
  if (autograd::any_requires_grad({x}))
    autograd::record(y, [mx = autograd::grad_meta(x), w, rows, in, out_dim](const Tensor& dy) {
      auto g = autograd::grad_target(mx);
      Tensor w32 = widen(w);
      gemm(dy.view(Shape{rows, out_dim}), false, w32, false, g.tensor.view(Shape{rows, in}), 1.0f,
           g.accumulate ? 1.0f : 0.0f);
    });
  return y;
}

}  // namespace magellano::ops
