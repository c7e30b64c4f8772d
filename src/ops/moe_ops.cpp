#include "magellano/ops/moe_ops.hpp"

#include <string>

#include "check.hpp"
#include "magellano/autograd/tape.hpp"
#include "magellano/ops/launch.hpp"
#include "magellano/ops/mapping.hpp"
#include "magellano/ops/reduce.hpp"

namespace magellano::ops {
using detail::require_dtype;
using detail::require_f32;

namespace {

void require_2d(const Tensor& t, const char* op, const char* arg) {
  require_f32(t, op, arg);
  if (t.shape().ndim() != 2)
    throw Error(std::string(op) + ": '" + arg + "' must be 2-D (N, X), got " + t.shape().str() +
                ".");
}

}  // namespace

TopK topk(const Tensor& scores, int64_t k, TopKWeights weights) {
  require_2d(scores, "topk", "scores");
  const int64_t n = scores.shape()[0], x = scores.shape()[1];
  if (k < 1 || k > x)
    throw Error("topk: k = " + std::to_string(k) + " must be in [1, X = " + std::to_string(x) + "].");
  Context& ctx = scores.ctx();
  const int mode = static_cast<int>(weights);  // the kernels' MODE_* numbers (cl/moe.cl)
  TopK out{Tensor::empty(ctx, Shape{n, k}, DType::i32), Tensor::empty(ctx, Shape{n, k})};
  Launch(ctx, "moe", "topk_fwd").arg(scores).arg(out.idx).arg(out.weights).arg(n)
      .arg(x).arg(k).arg(mode).run(n);
  if (autograd::any_requires_grad({scores})) {
    autograd::record(out.weights, [ms = autograd::grad_meta(scores), scores, idx = out.idx, n, x,
                                   k, mode](const Tensor& dw) {
      auto g = autograd::grad_target(ms);
      Launch(dw.ctx(), "moe", "topk_bwd").arg(scores).arg(idx).arg(dw).arg(g.tensor).arg(n)
          .arg(x).arg(k).arg(mode).arg(g.accumulate).run(n);
    });
  }
  return out;
}

RoutingPlan routing_plan(const Tensor& expert_ids, int64_t experts, int64_t k) {
  require_dtype(expert_ids, DType::i32, "routing_plan", "expert_ids");
  if (expert_ids.shape().ndim() != 1)
    throw Error("routing_plan: expert_ids must be 1-D (N * K), got " + expert_ids.shape().str() +
                ".");
  if (experts < 1 || k < 1 || expert_ids.numel() % k != 0)
    throw Error("routing_plan: need X >= 1, K >= 1 and N * K ids.");
  Context& ctx = expert_ids.ctx();
  const int64_t r = expert_ids.numel();
  RoutingPlan p;
  p.sorted = sort_indices(expert_ids);
  p.token_of = Tensor::empty(ctx, Shape{r}, DType::i32);
  p.offsets = Tensor::empty(ctx, Shape{experts + 1}, DType::i32);
  p.counts = Tensor::empty(ctx, Shape{experts}, DType::i32);
  if (r > 0)
    Launch(ctx, "moe", "moe_token_of").arg(p.sorted.perm).arg(p.token_of).arg(r).arg(k)
        .run(r);
  Launch(ctx, "moe", "moe_offsets").arg(p.sorted.keys).arg(p.offsets).arg(p.counts).arg(r)
      .arg(experts).run(experts + 1);
  return p;
}

Tensor row_scale(const Tensor& x, const Tensor& w) {
  require_f32(x, "row_scale", "x");
  require_f32(w, "row_scale", "w");
  if (x.shape().ndim() != 2 || w.numel() != x.shape()[0] ||
      !(w.shape().ndim() == 1 || (w.shape().ndim() == 2 && w.shape()[1] == 1)))
    throw Error("row_scale: x must be (R, D) and w (R) or (R, 1); got " + x.shape().str() +
                " and " + w.shape().str() + ".");
  const int64_t r = x.shape()[0], d = x.shape()[1];
  // cpu: a work-item per 16 columns of a row (per row for dw); gpu: per element (per row).
  const bool cpu = kernel_mapping(x.ctx()) == KernelMapping::cpu;
  const auto run_elements = [cpu, r, d](Launch& l) {
    if (cpu) l.run2d((d + 15) / 16, r, 1, 1);
    else l.run(r * d);
  };
  Tensor y = Tensor::empty(x.ctx(), x.shape());
  run_elements(Launch(x.ctx(), "moe", cpu ? "row_scale_fwd_vec" : "row_scale_fwd").arg(x).arg(w)
                   .arg(y).arg(r).arg(d));
  if (autograd::any_requires_grad({x, w})) {
    auto mx = autograd::grad_meta(x), mw = autograd::grad_meta(w);
    Tensor saved_x = mw ? x : Tensor(), saved_w = mx ? w : Tensor();
    autograd::record(y, [mx, mw, saved_x, saved_w, r, d, cpu, run_elements](const Tensor& dy) {
      if (mx) {
        auto g = autograd::grad_target(mx);
        run_elements(Launch(dy.ctx(), "moe", cpu ? "row_scale_bwd_x_vec" : "row_scale_bwd_x")
                         .arg(saved_w).arg(dy).arg(g.tensor).arg(r).arg(d).arg(g.accumulate));
      }
      if (mw) {
        auto g = autograd::grad_target(mw);
        Launch(dy.ctx(), "moe", cpu ? "row_scale_bwd_w_row" : "row_scale_bwd_w").arg(saved_x)
            .arg(dy).arg(g.tensor).arg(r).arg(d).arg(g.accumulate)
            .run(r, cpu ? kCpuGroupSize : default_local_size(dy.ctx()));
      }
    });
  }
  return y;
}

Tensor balance_loss(const Tensor& probs, const Tensor& counts, int64_t k) {
  require_2d(probs, "balance_loss", "probs");
  require_dtype(counts, DType::i32, "balance_loss", "counts");
  const int64_t n = probs.shape()[0], x = probs.shape()[1];
  if (counts.numel() != x || k < 1)
    throw Error("balance_loss: counts must be (X) = (" + std::to_string(x) + ") and k >= 1.");
  Context& ctx = probs.ctx();
  Tensor psum = Tensor::empty(ctx, Shape{x}, DType::f32, MemCategory::scratch);
  colsum_into(probs, x, psum, 1.0f, false);  // fixed-order column sums
  Tensor out = Tensor::empty(ctx, Shape{1});
  Launch(ctx, "moe", "balance_fwd").arg(psum).arg(counts).arg(out).arg(n).arg(x).arg(k).run(1);
  if (autograd::any_requires_grad({probs})) {
    autograd::record(out, [mp = autograd::grad_meta(probs), counts, n, x, k](const Tensor& g) {
      auto t = autograd::grad_target(mp);
      Launch(g.ctx(), "moe", "balance_bwd").arg(g).arg(counts).arg(t.tensor).arg(n)
          .arg(x).arg(k).arg(t.accumulate).run(n * x);
    });
  }
  return out;
}

Tensor z_loss(const Tensor& logits) {
  require_2d(logits, "z_loss", "logits");
  const int64_t n = logits.shape()[0], x = logits.shape()[1];
  if (n < 1 || x < 1) throw Error("z_loss: logits must be non-empty, got " + logits.shape().str());
  Context& ctx = logits.ctx();
  Tensor lse = Tensor::empty(ctx, Shape{n});  // saved for the backward
  Tensor sq = Tensor::empty(ctx, Shape{n, 1}, DType::f32, MemCategory::scratch);
  Launch(ctx, "moe", "zloss_lse").arg(logits).arg(lse).arg(sq).arg(n).arg(x).run(n);
  Tensor out = Tensor::empty(ctx, Shape{1});
  colsum_into(sq, 1, out, 1.0f / static_cast<float>(n), false);  // fixed-order mean
  if (autograd::any_requires_grad({logits})) {
    autograd::record(out, [ml = autograd::grad_meta(logits), logits, lse, n, x](const Tensor& g) {
      auto t = autograd::grad_target(ml);
      Launch(g.ctx(), "moe", "zloss_bwd").arg(logits).arg(lse).arg(g).arg(t.tensor).arg(n)
          .arg(x).arg(t.accumulate).run(n * x);
    });
  }
  return out;
}

}  // namespace magellano::ops
