// Mixture-of-Experts feed-forward layer (Mixtral style, dropless) and its residual block.
//
// MoE::forward(x), x: (B, L, D) or (N, D) f32, N = B * L tokens:
//   logits  = x · gateᵀ                      (N, X)    gate: (X, D), no bias
//   probs   = softmax(logits)                (N, X)    over all X experts
//   idx, w  = top-K of probs, w renormalised (N, K)    ties: the lower expert index
//   out[n]  = Σ_k w[n, k] · expert_{idx[n, k]}(x[n])   (x's shape)
//   expert_e(v) = w2_e (silu(w1_e v) ⊙ w3_e v)  (SwiGLU)  or  w2_e gelu(w1_e v)  (GELU, erf form)
// Experts that are plain Linears without adapters, all f32 or all f16, run through
// ops::expert_mlp (grouped GEMMs, one closure). With LoRA adapters or NF4 weights, each expert's rows are
// split off (ops::split_rows) and run through its Linear layers (base + adapter), then stacked
// back (ops::concat_rows): the same arithmetic per expert, composed of differentiable ops.
// Dropless: every token reaches its K experts. The (N·K) routed pairs are sorted by expert
// (stable device sort, so deterministic), their token rows gathered, each expert runs its GEMMs
// on its contiguous slice, and the results are scaled by their weights and scatter-added back
// to their tokens in a fixed order (no atomics). Backward runs through the same permutation.
//
// HOST SYNC: the forward reads back the X + 1 per-expert row offsets (one small blocking read
// per layer forward) to size the per-expert GEMMs; the backward reuses them. It is the only
// host synchronisation in the layer.
//
// Auxiliary losses, each (1) f32 with gradients into the router:
//   balance_loss = X · Σ_e f_e · P_e   (f_e: fraction of routed pairs sent to e, no gradient;
//                                        P_e: mean router probability of e); 1.0 when uniform
//   z_loss       = mean_n logsumexp(logits[n])²
//   aux_loss     = balance_coef · balance_loss + z_coef · z_loss   (add it to the training loss)
// expert_counts: (X) i32 device tensor, routed pairs per expert (for logging; Σ = N·K).
//
// Parameters (Mixtral names, under the prefix given to collect(), e.g. "backbone.layers.3.moe."):
//   gate.weight (X, D);  experts.{e}.w1.weight (F, D), experts.{e}.w2.weight (D, F),
//   experts.{e}.w3.weight (F, D) (SwiGLU only). Init as nn::Linear (U(±1/sqrt(in))); w2 is
//   further scaled by `w2_scale` (e.g. 1/sqrt(num_layers), as Mamba's out_proj).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "magellano/nn/linear.hpp"
#include "magellano/nn/module.hpp"
#include "magellano/nn/rmsnorm.hpp"

namespace magellano::nn {

struct MoEConfig {
  int64_t dim, hidden, experts = 8, top_k = 2;
  bool swiglu = true;  // false: GELU MLP w2(gelu(w1 x)) (erf GELU), no w3
  float balance_coef = 0.01f, z_coef = 0.001f;
};

struct MoEOutput {
  Tensor out;            // x's shape
  Tensor aux_loss;       // (1) = balance_coef · balance_loss + z_coef · z_loss
  Tensor balance_loss;   // (1)
  Tensor z_loss;         // (1)
  Tensor expert_counts;  // (X) i32
};

struct Expert {
  // w1: D→F (weight (F, D)), w2: F→D (weight (D, F)), w3: D→F (SwiGLU only), no biases.
  std::shared_ptr<Linear> w1, w2, w3;  // w3 null for GELU experts
};

class MoE : public Module {
 public:
  MoE(Context& ctx, const MoEConfig& config, Init& init, float w2_scale = 1.0f);
  MoEOutput forward(const Tensor& x) const;  // x: (B, L, D) or (N, D)
  // prefix + "gate.weight", prefix + "experts.{e}.{w1,w2,w3}.weight"
  void collect(const std::string& prefix, std::vector<Parameter>& out) const override;
  // gate (kind "gate") and every expert's w1, w2, w3 (kind "experts").
  void collect_linears(const std::string& prefix, std::vector<NamedLinear>& out) override;

  MoEConfig config;
  Linear gate;
  std::vector<Expert> experts;
};

// out = x + residual_scale · moe(rms_norm(x)), aux terms from the MoE.
class MoEBlock : public Module {
 public:
  MoEBlock(Context& ctx, const MoEConfig& config, Init& init, float w2_scale = 1.0f,
           float norm_eps = 1e-5f);
  MoEOutput forward(const Tensor& x) const;
  // prefix = "backbone.layers.{i}.": adds "norm.weight" and "moe." + the MoE's names.
  void collect(const std::string& prefix, std::vector<Parameter>& out) const override;
  void collect_linears(const std::string& prefix, std::vector<NamedLinear>& out) override;

  RMSNorm norm;
  MoE moe;
  float residual_scale = 1.0f;  // Granite's residual_multiplier
};

}  // namespace magellano::nn
