#include <cmath>
#include <string>

#include "attention_plan.hpp"
#include "check.hpp"
#include "magellano/ops/attention.hpp"
#include "magellano/ops/launch.hpp"

namespace magellano::ops {
namespace {

using detail::AttentionDims;
using detail::AttentionKernel;
using detail::AttentionPlan;

AttentionDims check_shapes(const Tensor& q, const Tensor& k, const Tensor& v) {
  using detail::require_f32;
  require_f32(q, "attention", "q");
  require_f32(k, "attention", "k");
  require_f32(v, "attention", "v");
  if (q.shape().ndim() != 4 || k.shape().ndim() != 4)
    throw Error("attention: q must be (B, L, heads, d) and k, v (B, L, kv_heads, d); got q " + q.shape().str() +
                ", k " + k.shape().str() + ".");
  if (v.shape() != k.shape())
    throw Error("attention: k and v must have the same shape, got " + k.shape().str() + " and " +
                v.shape().str() + ".");
  const AttentionDims d{q.size(0), q.size(1), q.size(2), k.size(2), q.size(3)};
  if (k.size(0) != d.b || k.size(1) != d.l || k.size(3) != d.d)
    throw Error("attention: q " + q.shape().str() + " and k " + k.shape().str() +
                " must agree in B, L and d ((B, L, heads, d) and (B, L, kv_heads, d)).");
  if (d.b < 1 || d.l < 1 || d.h < 1 || d.kvh < 1)
    throw Error("attention: every size must be positive; got q " + q.shape().str() + ", k " + k.shape().str() + ".");
  if (d.h % d.kvh)
    throw Error("attention: the " + std::to_string(d.kvh) + " kv heads must divide the " + std::to_string(d.h) +
                " query heads (grouped-query attention).");
  if (d.d % 8 || d.d < 8 || d.d > 256)
    throw Error("attention: head width d = " + std::to_string(d.d) +
                " is not supported; use a multiple of 8 from 8 to 256.");
  detail::require_int_sizes({d.l, d.b * d.l * d.h}, "attention", "the attention kernels");
  return d;
}

Tensor scratch(Context& ctx, const Shape& s) { return Tensor::empty(ctx, s, DType::f32, MemCategory::scratch); }

autograd::GradTarget target_or_scratch(const std::shared_ptr<AutogradMeta>& m, Context& ctx, const Shape& s) {
  if (m) return autograd::grad_target(m);
  return {scratch(ctx, s), false};
}

int64_t blocks(int64_t l, int64_t block) { return (l + block - 1) / block; }

struct Saved {
  Tensor q, k, v, out, lse;
  Tensor prefix;  // (B) i32, or undefined (nothing kept for the backward)
};

// A 1-element i32 stand-in for the kernels' prefix argument when there is none (never read).
Tensor no_prefix(Context& ctx) { return Tensor::empty(ctx, Shape{1}, DType::i32, MemCategory::scratch); }

// The prefix lengths the kernels read: options.prefix, checked, or a stand-in that is never read.
Tensor prefix_argument(Context& ctx, const AttentionOptions& opt, const AttentionDims& d) {
  if (!opt.prefix.defined()) return no_prefix(ctx);
  if (opt.prefix.dtype() != DType::i32 || opt.prefix.shape() != Shape{d.b})
    throw Error("attention: prefix lengths must be (B) = (" + std::to_string(d.b) + ") i32, got " +
                opt.prefix.shape().str() + " " + to_string(opt.prefix.dtype()) + ".");
  if (!opt.causal) throw Error("attention: prefix lengths only apply to causal attention.");
  return opt.prefix;
}

struct Metas {
  std::shared_ptr<AutogradMeta> q, k, v;
};

void backward(const Saved& s, const Metas& m, const Tensor& dout, const AttentionDims& d, const AttentionPlan& plan,
              float scale, bool causal) {
  Context& ctx = dout.ctx();
  const bool has_prefix = s.prefix.defined();
  const Tensor prefix = has_prefix ? s.prefix : no_prefix(ctx);
  const BuildOptions dq_knobs = plan.knobs(d, AttentionKernel::dq);
  Tensor drow = scratch(ctx, Shape{d.b, d.h, d.l});
  Launch(ctx, "attention", "attn_bwd_rowdot", dq_knobs)
      .arg(dout).arg(s.out).arg(drow).arg(d.b).arg(d.l).arg(d.h)
      .run(d.b * d.l * d.h);
  if (m.q) {
    const autograd::GradTarget gq = autograd::grad_target(m.q);
    Launch(ctx, "attention", plan.kernel_name(AttentionKernel::dq), dq_knobs)
        .arg(s.q).arg(s.k).arg(s.v).arg(dout).arg(s.lse).arg(drow).arg(gq.tensor)
        .arg(d.l).arg(d.h).arg(d.kvh).arg(scale).arg(causal).arg(gq.accumulate).arg(prefix).arg(has_prefix)
        .run(d.b * d.h * blocks(d.l, plan.dq.block) * plan.dq.items(), plan.dq.items());
  }
  if (m.k || m.v) {
    const autograd::GradTarget gk = target_or_scratch(m.k, ctx, s.k.shape());
    const autograd::GradTarget gv = target_or_scratch(m.v, ctx, s.v.shape());
    Launch(ctx, "attention", plan.kernel_name(AttentionKernel::dkdv), plan.knobs(d, AttentionKernel::dkdv))
        .arg(s.q).arg(s.k).arg(s.v).arg(dout).arg(s.lse).arg(drow).arg(gk.tensor).arg(gv.tensor)
        .arg(d.l).arg(d.h).arg(d.kvh).arg(scale).arg(causal).arg(gk.accumulate).arg(gv.accumulate)
        .arg(prefix).arg(has_prefix)
        .run(d.b * d.kvh * blocks(d.l, plan.dkdv.block) * plan.dkdv.items(), plan.dkdv.items());
  }
}

}  // namespace

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& opt) {
  const AttentionDims d = check_shapes(q, k, v);
  if (!(opt.scale >= 0.0f) || !std::isfinite(opt.scale))
    throw Error("attention: scale must be a finite positive number (or 0 for 1/sqrt(d)), got " +
                std::to_string(opt.scale) + ".");
  Context& ctx = q.ctx();
  const AttentionPlan plan = detail::plan_attention(ctx, d, opt);
  const float scale = opt.scale > 0.0f ? opt.scale : static_cast<float>(1.0 / std::sqrt(double(d.d)));
  Tensor out = Tensor::empty(ctx, q.shape());
  Tensor lse = Tensor::empty(ctx, Shape{d.b, d.h, d.l});
  const Tensor prefix = prefix_argument(ctx, opt, d);
  const bool has_prefix = opt.prefix.defined();
  Launch(ctx, "attention", plan.kernel_name(AttentionKernel::fwd), plan.knobs(d, AttentionKernel::fwd))
      .arg(q).arg(k).arg(v).arg(out).arg(lse).arg(d.l).arg(d.h).arg(d.kvh).arg(scale).arg(opt.causal)
      .arg(prefix).arg(has_prefix)
      .run(d.b * d.h * blocks(d.l, plan.fwd.block) * plan.fwd.items(), plan.fwd.items());
  if (autograd::any_requires_grad({q, k, v})) {
    using autograd::grad_meta;
    const Metas m{grad_meta(q), grad_meta(k), grad_meta(v)};
    const Saved s{q, k, v, out, lse, opt.prefix};
    autograd::record(out, [s, m, d, plan, scale, causal = opt.causal](const Tensor& dout) {
      backward(s, m, dout, d, plan, scale, causal);
    });
  }
  return out;
}

}  // namespace magellano::ops
