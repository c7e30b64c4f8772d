// Dense feed-forward layer (SwiGLU or GELU MLP, no biases) and its residual block: the 'F' layers
// of a stack without experts (Jamba's JambaMLP, Granite's dense layers), and the MoE's shared
// expert (nn/moe.hpp).
//
// Mlp::forward(x), x: (..., D) f32 -> (..., D):
//   SwiGLU  y = w2 (silu(w1 x) ⊙ w3 x)      w1, w3: (F, D) weights (D→F), w2: (D, F) (F→D)
//   GELU    y = w2 gelu(w1 x)   (erf form; no w3)
// Plain Linears (no adapter, not NF4, f32 or f16) run as one group of ops::expert_mlp (it keeps
// only the input and the pre-activations h1, h3 for the backward and recomputes the
// activation); with a LoRA adapter or NF4 weights the same arithmetic is composed from each
// Linear's own forward (forward_linears).
// Hugging Face layouts: Mistral / Jamba's gate_proj = w1, up_proj = w3, down_proj = w2; Granite
// 4.0-H's shared_mlp.input_linear (2F, D) = [w1; w3] stacked by rows (chunk(2) on its output:
// the first F rows are the gate w1, the last F rows the up projection w3), output_linear = w2.
//
// Parameters (under the prefix given to collect()): w1.weight (F, D), w2.weight (D, F),
// w3.weight (F, D) (SwiGLU only). Init as nn::Linear (U(±1/sqrt(in)), drawn w1, w2, w3 in this
// order); w2 further scaled by `w2_scale` (e.g. 1/sqrt(num_layers), as Mamba's out_proj).
// collect_linears gives w1, w2, w3 under the LoRA target kind passed to the constructor: "mlp"
// for MlpBlock, "experts" for routed experts, "shared_expert" for the MoE's shared expert.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "magellano/nn/linear.hpp"
#include "magellano/nn/module.hpp"
#include "magellano/nn/rmsnorm.hpp"

namespace magellano::nn {

struct MlpConfig {
  int64_t dim = 0, hidden = 0;  // D, F
  bool swiglu = true;           // false: GELU MLP w2(gelu(w1 x)), no w3
  bool operator==(const MlpConfig&) const = default;
};

class Mlp : public Module {
 public:
  Mlp(Context& ctx, const MlpConfig& config, Init& init, float w2_scale = 1.0f,
      std::string lora_kind = "mlp");
  Tensor forward(const Tensor& x) const;          // x: (..., D) -> (..., D)
  Tensor forward_linears(const Tensor& x) const;  // the same through each Linear's forward
  // True when ops::expert_mlp can run all these MLPs' weights in one group: no adapters, no NF4,
  // one storage (all f32 or all f16).
  static bool grouped(const std::vector<const Mlp*>& mlps);
  // prefix + "w1.weight", "w2.weight", "w3.weight" (SwiGLU only)
  void collect(const std::string& prefix, std::vector<Parameter>& out) const override;
  // w1, w2, w3 under prefix, kind `lora_kind`.
  void collect_linears(const std::string& prefix, std::vector<NamedLinear>& out) override;

  MlpConfig config;
  std::string lora_kind;
  // w1: D→F (weight (F, D)), w2: F→D (weight (D, F)), w3: D→F (SwiGLU only), no biases.
  std::shared_ptr<Linear> w1, w2, w3;  // w3 null for GELU
};

// out = x + residual_scale · mlp(rms_norm(x)).
class MlpBlock : public Module {
 public:
  MlpBlock(Context& ctx, const MlpConfig& config, Init& init, float w2_scale = 1.0f,
           float norm_eps = 1e-5f);
  Tensor forward(const Tensor& x) const;  // x: (B, L, D) or (N, D)
  // One position (B, D), no autograd: the fused decode path (nn/decode_path.hpp) where the weights
  // allow it (w1 and w3 with the norm in their products, w2 with the residual), else forward.
  Tensor step(const Tensor& x_t) const;
  bool fused_step(const Tensor& x_t) const;
  // prefix = "backbone.layers.{i}.": "norm.weight", "mlp.w1.weight", "mlp.w2.weight", "mlp.w3.weight"
  void collect(const std::string& prefix, std::vector<Parameter>& out) const override;
  // prefix + "mlp.w1" ... with LoRA kind "mlp"
  void collect_linears(const std::string& prefix, std::vector<NamedLinear>& out) override;

  RMSNorm norm;
  Mlp mlp;
  float residual_scale = 1.0f;  // Granite's residual_multiplier
};

}  // namespace magellano::nn
