// The Mamba2 (SSD) mixer and its residual block, as Hugging Face transformers'
// Mamba2ForCausalLM and mamba_ssm's Mamba2 module (norm after the gate, per-group norm), with
// Hugging Face's parameter names.
//
//   x: (B, L, D) → in_proj D → [z: Di | xBC: C | dt: H] (bias optional)
//   xBC → causal depthwise conv1d (width K, bias optional) → SiLU           (B, L, C)
//   xBC = [x: Di | B: G·N | C: G·N]; x viewed (B, L, H, P), B and C (B, L, G, N)
//   y = ssd_scan(x, dt, dt_bias, A_log, B, C, D), dt_t = clamp(softplus(dt + dt_bias), lo, hi)
//   u = gated RMSNorm(y, z) per group of Di/G channels × weight; out = out_proj Di → D
// Di = expand·D = H·P (H heads of width P = head_dim), G = n_groups (head h reads group
// h / (H/G)), N = d_state, C = Di + 2·G·N.
//
// The clamp to time_step_limit applies in the parallel forward and in step() alike, so cached
// decoding equals the parallel forward (transformers clamps only in its parallel path).
#pragma once
#include <cmath>

#include "magellano/nn/linear.hpp"
#include "magellano/nn/mamba.hpp"
#include "magellano/nn/prefix_reversal.hpp"
#include "magellano/nn/rmsnorm.hpp"
#include "magellano/ops/ssd.hpp"

namespace magellano::nn {

struct Mamba2Config {
  int64_t dim = 0;        // D
  int64_t head_dim = 64;  // P
  int64_t n_groups = 1;   // G
  int64_t d_state = 128;  // N
  int64_t d_conv = 4;     // K
  int64_t expand = 2;     // Di = expand * D
  int chunk = 0;          // SSD steps per chunk; 0 = the device's default
  float dt_lo = 0.0f, dt_hi = INFINITY;  // time_step_limit (no clamp at (0, inf))
  // dt_bias init: softplus⁻¹ of a log-uniform draw in [time_step_min, time_step_max], floored.
  double time_step_min = 0.001, time_step_max = 0.1, time_step_floor = 1e-4;
  bool bias = false;       // in_proj / out_proj biases (use_bias)
  bool conv_bias = true;   // conv1d bias (use_conv_bias)
  float norm_eps = 1e-5f;  // the block's RMSNorm and the gated norm (layer_norm_epsilon)
  int64_t num_layers = 1;  // out_proj is scaled by 1/sqrt(num_layers)
  bool bidirectional_prefix = false;  // prefix-LM: the reverse branch over the prefix (prefix_reversal.hpp)

  int64_t inner() const { return expand * dim; }                     // Di
  int64_t heads() const { return inner() / head_dim; }                // H
  int64_t conv_channels() const { return inner() + 2 * n_groups * d_state; }  // C
  int64_t in_proj_out() const { return inner() + conv_channels() + heads(); }  // Di + C + H
  ops::SsdDt step_size() const { return {true, dt_lo, dt_hi}; }
  // Throws a clear error unless head_dim divides Di, n_groups divides H and every size is positive.
  void validate() const;
};

// Mamba2's decoding state is MambaState's pair: conv (B, C, K-1), the last K-1 conv inputs
// oldest first; ssm (B, H, P, N).
using Mamba2State = MambaState;

class Mamba2Mixer : public Module {
 public:
  Mamba2Mixer(Context& ctx, const Mamba2Config& cfg, Init& init);
  // x: (B, L, D) -> (B, L, D). With `state`, it receives the state after the last position:
  // ssd_scan's final state and the conv window, exactly what step() builds from the same inputs.
  Tensor forward(const Tensor& x, Mamba2State* state = nullptr) const;
  // One position, no autograd: x_t: (B, D) -> (B, D); `state` is updated in place.
  Tensor step(const Tensor& x_t, Mamba2State& state) const;
  Mamba2State empty_state(int64_t batch) const;  // zeros
  void collect(const std::string& prefix, std::vector<Parameter>& out) const override;
  void collect_linears(const std::string& prefix, std::vector<NamedLinear>& out) override;

  Mamba2Config cfg;
  Linear in_proj, out_proj;  // (Di + C + H, D) and (D, Di), biases when cfg.bias
  Tensor conv_weight;        // (C, 1, K), as PyTorch's Conv1d stores it
  Tensor conv_bias;          // (C), undefined without cfg.conv_bias
  Tensor dt_bias;            // (H)
  Tensor A_log;              // (H); A = -exp(A_log)
  Tensor D;                  // (H)
  Tensor norm_weight;        // (Di), the gated norm's ("norm.weight")

 private:
  ops::SsdOptions scan_options() const;
};

// x + residual_scale · mixer(RMSNorm(x)); the residual stream stays fp32.
class Mamba2Block : public Module {
 public:
  Mamba2Block(Context& ctx, const Mamba2Config& cfg, Init& init);
  // (B, L, D). reversal: the prefix gathers, used only with cfg.bidirectional_prefix.
  Tensor forward(const Tensor& x, Mamba2State* state = nullptr, const PrefixReversal& reversal = {}) const;
  Tensor step(const Tensor& x_t, Mamba2State& state) const;  // (B, D)
  void collect(const std::string& prefix, std::vector<Parameter>& out) const override;
  void collect_linears(const std::string& prefix, std::vector<NamedLinear>& out) override;
  RMSNorm norm;
  Mamba2Mixer mixer;
  float residual_scale = 1.0f;  // Granite's residual_multiplier
};

}  // namespace magellano::nn
