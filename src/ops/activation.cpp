#include "magellano/ops/activation.hpp"

#include "check.hpp"
#include "magellano/ops/launch.hpp"
#include "magellano/ops/mapping.hpp"

namespace magellano::ops {
namespace {

// y = f(x); backward reads either the input (silu, softplus, gelu) or the output (exp).
Tensor pointwise(const Tensor& x, const char* fwd, const char* bwd, bool bwd_uses_output) {
  detail::require_f32(x, fwd, "x");
  Context& ctx = x.ctx();
  Tensor y = Tensor::empty(ctx, x.shape());
  Launch(ctx, "activation", fwd, vec_options(ctx)).arg(x).arg(y).arg(x.numel())
      .run(vec_items(ctx, x.numel()));
  if (autograd::any_requires_grad({x})) {
    Tensor saved = bwd_uses_output ? y.view(y.shape()) : x;
    autograd::record(y, [mx = autograd::grad_meta(x), saved, bwd](const Tensor& dy) {
      auto g = autograd::grad_target(mx);
      Launch(dy.ctx(), "activation", bwd, vec_options(dy.ctx())).arg(saved).arg(dy).arg(g.tensor)
          .arg(dy.numel()).arg(g.accumulate).run(vec_items(dy.ctx(), dy.numel()));
    });
  }
  return y;
}

}  // namespace

Tensor silu(const Tensor& x) { return pointwise(x, "silu_fwd", "silu_bwd", false); }
Tensor softplus(const Tensor& x) { return pointwise(x, "softplus_fwd", "softplus_bwd", false); }
Tensor exp(const Tensor& x) { return pointwise(x, "exp_fwd", "exp_bwd", true); }
Tensor gelu(const Tensor& x) { return pointwise(x, "gelu_fwd", "gelu_bwd", false); }

}  // namespace magellano::ops
