#include "magellano/ops/cross_entropy.hpp"

#include <limits>

#include "check.hpp"
#include "magellano/ops/launch.hpp"
#include "magellano/ops/mapping.hpp"

namespace magellano::ops {
namespace {

void check_args(const Tensor& logits, const Tensor& targets) {
  detail::require_f32(logits, "cross_entropy", "logits");
  detail::require_dtype(targets, DType::i32, "cross_entropy", "targets");
  const Shape& s = logits.shape();
  if (s.ndim() < 2 || s.last() < 1)
    throw Error("cross_entropy: logits must be (N, V) or (..., V) with V >= 1, got " + s.str() +
                ".");
  if (s.last() > std::numeric_limits<int32_t>::max())
    throw Error("cross_entropy: V = " + std::to_string(s.last()) + " does not fit i32 targets.");
  std::vector<int64_t> lead = s.dims();
  lead.pop_back();
  const Shape want(lead);
  const Shape& t = targets.shape();
  const bool flat = t.ndim() == 1 && t[0] == s.rows();
  if (t != want && !flat)
    throw Error("cross_entropy: targets must have shape " + want.str() +
                (s.ndim() > 2 ? " (or (" + std::to_string(s.rows()) + "))" : std::string()) +
                " to match logits " + s.str() + ", got " + t.str() + ".");
}

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int32_t ignore_index) {
  check_args(logits, targets);
  Context& ctx = logits.ctx();
  const int64_t v = logits.shape().last(), rows = logits.shape().rows();
  // cpu: a work-item per row; gpu: a work-group of `local` per row (cl/softmax.cl).
  const bool cpu = kernel_mapping(ctx) == KernelMapping::cpu;
  const int64_t local = pow2_local_size(ctx);
  const int64_t row_global = cpu ? rows : rows * local, row_local = cpu ? kCpuGroupSize : local;
  const BuildOptions opt = BuildOptions().define("LOCAL", local);
  Tensor loss = Tensor::empty(ctx, Shape{1});
  Tensor inv_count = Tensor::empty(ctx, Shape{1});
  Tensor lse = Tensor::empty(ctx, Shape{std::max<int64_t>(rows, 1)});
  {
    Tensor row_loss = Tensor::empty(ctx, Shape{std::max<int64_t>(rows, 1)}, DType::f32,
                                    MemCategory::scratch);
    Launch(ctx, "softmax", cpu ? "ce_fwd_row" : "ce_fwd", opt).arg(logits).arg(targets).arg(lse)
        .arg(row_loss).arg(rows).arg(v).arg(ignore_index).run(row_global, row_local);
    Launch(ctx, "softmax", "ce_mean", opt).arg(row_loss).arg(targets).arg(loss)
        .arg(inv_count).arg(rows).arg(v).arg(ignore_index).run(local, local);
  }
  if (autograd::any_requires_grad({logits})) {
    autograd::record(loss, [ml = autograd::grad_meta(logits), logits, targets, lse, inv_count, rows,
                            v, ignore_index, cpu, row_global, row_local, opt](const Tensor& dloss) {
      auto g = autograd::grad_target(ml);
      Launch(dloss.ctx(), "softmax", cpu ? "ce_bwd_row" : "ce_bwd", opt).arg(logits).arg(targets)
          .arg(lse).arg(inv_count).arg(dloss).arg(g.tensor).arg(rows).arg(v).arg(ignore_index)
          .arg(g.accumulate).run(row_global, row_local);
    });
  }
  return loss;
}

void check_targets(const Tensor& targets, int64_t vocab, int32_t ignore_index) {
  detail::require_dtype(targets, DType::i32, "check_targets", "targets");
  const std::vector<int32_t> t = targets.to_host_i32();
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] == ignore_index || (t[i] >= 0 && t[i] < vocab)) continue;
    throw Error("cross_entropy: target " + std::to_string(t[i]) + " at position " +
                std::to_string(i) + " is outside the vocabulary [0, " + std::to_string(vocab) +
                ") and is not the ignore index " + std::to_string(ignore_index) +
                " (check the tokenizer's vocabulary size against the model's).");
  }
}

}  // namespace magellano::ops
