#include "check.hpp"
#include "magellano/ops/conv1d.hpp"
#include "magellano/ops/launch.hpp"

namespace magellano::ops {

Tensor causal_conv1d_step(const Tensor& x_t, const Tensor& weight, const Tensor& bias,
                          const Tensor& state) {
  detail::require_f32(x_t, "causal_conv1d_step", "x_t");
  const int64_t b = x_t.size(0), c = x_t.size(1), w = weight.size(1);
  if (x_t.shape().ndim() != 2 || weight.shape() != Shape{c, w} ||
      state.shape() != Shape{b, c, w - 1} || (bias.defined() && bias.shape() != Shape{c}))
    throw Error("causal_conv1d_step: expected x_t (B, C), weight (C, W), state (B, C, W-1); got " +
                x_t.shape().str() + ", " + weight.shape().str() + ", " + state.shape().str() + ".");
  Tensor y = Tensor::empty(x_t.ctx(), Shape{b, c});
  Launch(x_t.ctx(), "conv1d_step", "conv1d_step")
      .arg(x_t).arg(weight).arg(bias.defined() ? bias : weight).arg(state).arg(y)
      .arg(b).arg(c).arg(w).arg(bias.defined())
      .run(b * c);
  return y;
}

Tensor causal_conv1d_state(const Tensor& x, int64_t width) {
  detail::require_f32(x, "causal_conv1d_state", "x");
  if (x.shape().ndim() != 3 || width < 1)
    throw Error("causal_conv1d_state: x must be (B, L, C) and width >= 1; got " + x.shape().str());
  const int64_t b = x.size(0), l = x.size(1), c = x.size(2);
  Tensor state = Tensor::empty(x.ctx(), Shape{b, c, width - 1});
  Launch(x.ctx(), "conv1d_step", "conv1d_state_of")
      .arg(x).arg(state).arg(b).arg(l).arg(c).arg(width)
      .run(b * c * (width - 1));
  return state;
}

}  // namespace magellano::ops
