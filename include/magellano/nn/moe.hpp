// Mixture-of-Experts feed-forward layer (Mixtral, Jamba and Granite 4.0-H style, dropless) and its
// residual block.
//
// MoE::forward(x), x: (B, L, D) or (N, D) f32, N = B * L tokens:
//   logits  = x · gateᵀ                      (N, X)    gate: (X, D), no bias
//   probs   = softmax(logits)                (N, X)    over all X experts (fp32)
//   idx, w  = the routing (MoERouter), ties to the lower expert index:
//     softmax_topk, normalize_top_k   top-K of probs, w renormalised to sum 1   (Mixtral)
//     softmax_topk, !normalize_top_k  top-K of probs, w = those probs as they are (Jamba: Σw < 1)
//     topk_softmax                    top-K of logits, w = softmax over those K  (Granite 4.0-H's
//                                     GraniteMoeHybridTopKGating: fp32 logits, Σw = 1)
//   out[n]  = Σ_k w[n, k] · expert_{idx[n, k]}(x[n])  [+ shared_expert(x[n])]   (x's shape)
//   expert_e(v) = w2_e (silu(w1_e v) ⊙ w3_e v)  (SwiGLU)  or  w2_e gelu(w1_e v)  (GELU, erf form)
// topk_softmax and softmax_topk + normalize_top_k give the same weights in exact arithmetic
// (softmax restricted to the K is the renormalised K probabilities), so they differ only in fp32
// rounding and where two probabilities round to equal (or to 0) while their logits differ:
// topk_softmax selects on the logits, as Granite does. Tie-breaking: torch.topk leaves the order
// of equal values unspecified; we always take the lower expert index. Gradients reach the router
// through the chosen mode's weights (ops::topk) and through the aux losses.
// Every expert is an nn::Mlp (nn/mlp.hpp). Experts that are plain Linears without adapters, all
// f32 or all f16, run through ops::expert_mlp (grouped GEMMs, one closure). With LoRA adapters or
// NF4 weights, each expert's rows are split off (ops::split_rows) and run through its Linear layers
// (Mlp::forward_linears: base + adapter), then stacked back (ops::concat_rows): the same
// arithmetic per expert, composed of differentiable ops.
// The shared expert (shared_hidden F_s > 0; Granite 4.0-H's shared_mlp) is one more nn::Mlp of
// hidden F_s with the routed experts' activation, applied to every token with weight 1 and added
// to the routed sum; it takes no part in routing or the aux losses.
// Dropless: every token reaches its K experts. The (N·K) routed pairs are sorted by expert
// (stable device sort, so deterministic), their token rows gathered, each expert runs its GEMMs
// on its contiguous slice, and the results are scaled by their weights and scatter-added back
// to their tokens in a fixed order (no atomics). Backward runs through the same permutation.
//
// HOST SYNC: the forward reads back the X + 1 per-expert row offsets (one small blocking read
// per layer forward) to size the per-expert GEMMs; the backward reuses them. It is the only
// host synchronisation in the layer. MoEBlock::step (decoding) has none: its kernels read the
// expert ids from a device buffer.
//
// Auxiliary losses, each (1) f32 with gradients into the router, the same in every routing mode
// (as transformers' load_balancing_loss_func for Mixtral, Jamba and Granite: from the full softmax):
//   balance_loss = X · Σ_e f_e · P_e   (f_e: fraction of routed pairs sent to e, no gradient;
//                                        P_e: mean router probability of e); 1.0 when uniform
//                  (transformers' value is K times ours: its f sums to K over the experts; and it
//                   counts the top-K of probs, where we count the routing actually taken)
//   z_loss       = mean_n logsumexp(logits[n])²
//   aux_loss     = balance_coef · balance_loss + z_coef · z_loss   (add it to the training loss)
// expert_counts: (X) i32 device tensor, routed pairs per expert (for logging; Σ = N·K).
//
// Parameters (Mixtral names, under the prefix given to collect(), e.g. "backbone.layers.3.moe."):
//   gate.weight (X, D);  experts.{e}.w1.weight (F, D), experts.{e}.w2.weight (D, F),
//   experts.{e}.w3.weight (F, D) (SwiGLU only);  with a shared expert:
//   shared_expert.w1.weight (F_s, D), shared_expert.w2.weight (D, F_s), shared_expert.w3.weight
//   (F_s, D) (SwiGLU only; Granite's shared_mlp.input_linear (2F_s, D) = [w1; w3] by rows,
//   output_linear = w2). Init as nn::Linear (U(±1/sqrt(in))), drawn gate, then each expert's w1,
//   w2, w3, then the shared expert's; every w2 is further scaled by `w2_scale` (e.g.
//   1/sqrt(num_layers), as Mamba's out_proj).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "magellano/nn/linear.hpp"
#include "magellano/nn/mlp.hpp"
#include "magellano/nn/module.hpp"
#include "magellano/nn/rmsnorm.hpp"
#include "magellano/ops/moe_decode.hpp"

namespace magellano::nn {

// How the router turns logits into the K experts of a token and their weights (see above).
enum class MoERouter { softmax_topk, topk_softmax };

struct MoEConfig {
  int64_t dim, hidden, experts = 8, top_k = 2;
  bool swiglu = true;  // false: GELU MLP w2(gelu(w1 x)) (erf GELU), no w3
  float balance_coef = 0.01f, z_coef = 0.001f;
  MoERouter router = MoERouter::softmax_topk;
  bool normalize_top_k = true;  // softmax_topk only: renormalise the K weights to sum 1
  int64_t shared_hidden = 0;    // F_s of the shared expert; 0 = none
  MlpConfig expert_config() const { return {dim, hidden, swiglu}; }
  MlpConfig shared_config() const { return {dim, shared_hidden, swiglu}; }
};

struct MoEOutput {
  Tensor out;            // x's shape
  Tensor aux_loss;       // (1) = balance_coef · balance_loss + z_coef · z_loss
  Tensor balance_loss;   // (1)
  Tensor z_loss;         // (1)
  Tensor expert_counts;  // (X) i32
};

class MoE : public Module {
 public:
  MoE(Context& ctx, const MoEConfig& config, Init& init, float w2_scale = 1.0f);
  MoEOutput forward(const Tensor& x) const;  // x: (B, L, D) or (N, D)
  // prefix + "gate.weight", prefix + "experts.{e}.{w1,w2,w3}.weight",
  // prefix + "shared_expert.{w1,w2,w3}.weight"
  void collect(const std::string& prefix, std::vector<Parameter>& out) const override;
  // gate (kind "gate"), every expert's w1, w2, w3 (kind "experts"), the shared expert's
  // (kind "shared_expert").
  void collect_linears(const std::string& prefix, std::vector<NamedLinear>& out) override;

  // The router and the experts' weights stacked as the fused decode reads them
  // (ops::moe_decode_experts: X·(2 or 3)·F·D floats, a copy), or null where it cannot run: a
  // router or expert with an adapter or non-f32 weights, or more than 64 experts.
  std::shared_ptr<const ops::MoEDecodeWeights> decode_weights() const;

  MoEConfig config;
  Linear gate;
  std::vector<Mlp> experts;              // X experts of hidden F, LoRA kind "experts"
  std::unique_ptr<Mlp> shared_expert;   // hidden F_s, kind "shared_expert"; null when F_s = 0
};

// out = x + residual_scale · moe(rms_norm(x)), aux terms from the MoE.
class MoEBlock : public Module {
 public:
  MoEBlock(Context& ctx, const MoEConfig& config, Init& init, float w2_scale = 1.0f,
           float norm_eps = 1e-5f);
  MoEOutput forward(const Tensor& x) const;
  // One decoding position, no autograd: x (B, D) -> forward(x).out, with w from
  // moe.decode_weights(): three launches (and the shared expert's), no host read.
  Tensor step(const Tensor& x, const ops::MoEDecodeWeights& w) const;
  // prefix = "backbone.layers.{i}.": adds "norm.weight" and "moe." + the MoE's names.
  void collect(const std::string& prefix, std::vector<Parameter>& out) const override;
  void collect_linears(const std::string& prefix, std::vector<NamedLinear>& out) override;

  RMSNorm norm;
  MoE moe;
  float residual_scale = 1.0f;  // Granite's residual_multiplier
};

}  // namespace magellano::nn
