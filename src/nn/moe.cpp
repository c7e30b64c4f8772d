#include "magellano/nn/moe.hpp"

#include <cmath>
#include <string>

#include "magellano/nn/decode_path.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/expert_mlp.hpp"
#include "magellano/ops/index.hpp"
#include "magellano/ops/matmul.hpp"
#include "magellano/ops/moe_ops.hpp"
#include "magellano/ops/reduce.hpp"
#include "magellano/ops/rows.hpp"
#include "magellano/ops/softmax.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::nn {

MoE::MoE(Context& ctx, const MoEConfig& c, Init& init, float w2_scale)
    : config(c), gate(ctx, c.dim, c.experts, false, init) {
  if (c.dim < 1 || c.hidden < 1 || c.experts < 1 || c.top_k < 1 || c.top_k > c.experts || c.shared_hidden < 0)
    throw Error("MoE: need dim, hidden, experts >= 1, 1 <= top_k <= experts and shared_hidden >= 0 (got dim " +
                std::to_string(c.dim) + ", hidden " + std::to_string(c.hidden) + ", experts " +
                std::to_string(c.experts) + ", top_k " + std::to_string(c.top_k) + ", shared_hidden " +
                std::to_string(c.shared_hidden) + ").");
  if (c.router == MoERouter::topk_softmax && !c.normalize_top_k)
    throw Error("MoE: normalize_top_k = false needs the softmax_topk router (topk_softmax weights always sum to 1).");
  for (int64_t e = 0; e < c.experts; ++e) experts.emplace_back(ctx, c.expert_config(), init, w2_scale, "experts");
  if (c.shared_hidden > 0)
    shared_expert = std::make_unique<Mlp>(ctx, c.shared_config(), init, w2_scale, "shared_expert");
}

MoEOutput MoE::forward(const Tensor& x) const {
  const int64_t d = config.dim, nx = config.experts, k = config.top_k;
  if (x.shape().last() != d || x.shape().ndim() < 2 || x.shape().ndim() > 3)
    throw Error("MoE: x must be (B, L, " + std::to_string(d) + ") or (N, " + std::to_string(d) +
                "), got " + x.shape().str() + ".");
  const int64_t n = x.shape().rows();
  const Tensor x2 = ops::reshape(x, Shape{n, d});                  // (N, D)
  const Tensor logits = gate.forward(x2);                            // (N, X)
  const Tensor probs = ops::softmax(logits);                        // (N, X), also for the aux losses
  const ops::TopK top =                                             // (N, K) i32, (N, K)
      config.router == MoERouter::topk_softmax
          ? ops::topk(logits, k, ops::TopKWeights::softmax)
          : ops::topk(probs, k, config.normalize_top_k ? ops::TopKWeights::renorm : ops::TopKWeights::raw);
  const ops::RoutingPlan plan = ops::routing_plan(top.idx.view(Shape{n * k}), nx, k);

  // The only host sync of the layer: X + 1 offsets of the expert-sorted rows.
  const std::vector<int32_t> off32 = plan.offsets.to_host_i32();
  const std::vector<int64_t> offsets(off32.begin(), off32.end());

  const Tensor xs = ops::gather_rows(x2, plan.token_of);                 // (N·K, D) by expert
  // ops::expert_mlp takes f32 or f16 weights (one dtype for all) without adapters.
  std::vector<const Mlp*> all;
  for (const Mlp& e : experts) all.push_back(&e);
  Tensor ys;  // (N·K, D)
  if (Mlp::grouped(all)) {
    std::vector<Tensor> w1, w2, w3;
    for (const Mlp& e : experts) {
      w1.push_back(e.w1->weight);
      w2.push_back(e.w2->weight);
      if (config.swiglu) w3.push_back(e.w3->weight);
    }
    ys = ops::expert_mlp(xs, offsets, w1, w2, w3,
                         config.swiglu ? ops::ExpertActivation::swiglu : ops::ExpertActivation::gelu);
  } else {
    const std::vector<Tensor> pieces = ops::split_rows(xs, offsets);  // (c_e, D) per expert
    std::vector<Tensor> outs(experts.size());
    for (size_t e = 0; e < experts.size(); ++e)
      if (pieces[e].defined()) outs[e] = experts[e].forward_linears(pieces[e]);  // (c_e, D)
    ys = ops::concat_rows(outs, xs.size(0));
  }
  const Tensor ws = ops::gather_rows(ops::reshape(top.weights, Shape{n * k, 1}),
                                     plan.sorted.perm);                   // (N·K, 1) by expert
  Tensor mixed = ops::scatter_add_rows(ops::row_scale(ys, ws), plan.token_of, n);  // (N, D)
  if (shared_expert) mixed = ops::add(mixed, shared_expert->forward(x2));               // (N, D)

  MoEOutput out;
  out.out = ops::reshape(mixed, x.shape());
  out.balance_loss = ops::balance_loss(probs, plan.counts, k);
  out.z_loss = ops::z_loss(logits);
  out.aux_loss = ops::add(ops::scale(out.balance_loss, config.balance_coef), out.z_loss,
                          config.z_coef);
  out.expert_counts = plan.counts;
  return out;
}

std::shared_ptr<const ops::MoEDecodeWeights> MoE::decode_weights() const {
  const int64_t X = config.experts, F = config.hidden, D = config.dim;
  if (X > 64 || !fused_linear(gate)) return nullptr;
  for (const Mlp& e : experts)
    for (const Linear* l : {e.w1.get(), e.w2.get(), e.w3.get()})
      if (l && !fused_linear(*l)) return nullptr;
  Context& ctx = gate.weight.ctx();
  auto stack = [&](auto member, int64_t rows, int64_t cols) {  // (X, rows, cols)
    Tensor s = Tensor::empty(ctx, Shape{X * rows, cols});
    for (int64_t e = 0; e < X; ++e) ops::copy_into((experts[e].*member)->weight, s.narrow_rows(e * rows, (e + 1) * rows));
    return s.view(Shape{X, rows, cols});
  };
  auto w = std::make_shared<ops::MoEDecodeWeights>();
  w->gate = gate.weight;
  w->w1 = stack(&Mlp::w1, F, D);
  if (config.swiglu) w->w3 = stack(&Mlp::w3, F, D);
  w->w2 = stack(&Mlp::w2, D, F);
  return w;
}

void MoE::collect(const std::string& prefix, std::vector<Parameter>& out) const {
  gate.collect(prefix + "gate.", out);
  for (size_t e = 0; e < experts.size(); ++e) experts[e].collect(prefix + "experts." + std::to_string(e) + ".", out);
  if (shared_expert) shared_expert->collect(prefix + "shared_expert.", out);
}

void MoE::collect_linears(const std::string& prefix, std::vector<NamedLinear>& out) {
  gate.collect_linears(prefix + "gate.", out);
  for (size_t e = 0; e < experts.size(); ++e)
    experts[e].collect_linears(prefix + "experts." + std::to_string(e) + ".", out);
  if (shared_expert) shared_expert->collect_linears(prefix + "shared_expert.", out);
}

void MoEBlock::collect_linears(const std::string& prefix, std::vector<NamedLinear>& out) {
  moe.collect_linears(prefix + "moe.", out);
}

MoEBlock::MoEBlock(Context& ctx, const MoEConfig& config, Init& init, float w2_scale,
                   float norm_eps)
    : norm(ctx, config.dim, norm_eps), moe(ctx, config, init, w2_scale) {}

MoEOutput MoEBlock::forward(const Tensor& x) const {
  MoEOutput o = moe.forward(norm.forward(x));
  o.out = ops::add(x, o.out, residual_scale);
  return o;
}

Tensor MoEBlock::step(const Tensor& x, const ops::MoEDecodeWeights& w) const {
  autograd::NoGradScope no_grad;
  const MoEConfig& c = moe.config;
  const ops::DecodeRouter router = c.router == MoERouter::topk_softmax ? ops::DecodeRouter::topk_softmax
                                   : c.normalize_top_k                ? ops::DecodeRouter::softmax_topk_renorm
                                                                      : ops::DecodeRouter::softmax_topk_raw;
  const ops::DecodeRouting r = ops::moe_decode_route(x, norm.weight, norm.eps, w.gate, c.top_k, router);
  const Tensor shared = moe.shared_expert ? moe.shared_expert->forward(r.xn) : Tensor();
  return ops::moe_decode_experts(x, r, w, residual_scale, shared);
}

void MoEBlock::collect(const std::string& prefix, std::vector<Parameter>& out) const {
  norm.collect(prefix + "norm.", out);
  moe.collect(prefix + "moe.", out);
}

}  // namespace magellano::nn
