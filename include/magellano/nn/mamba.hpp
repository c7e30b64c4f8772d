// The Mamba (selective state space) mixer and its residual block, as mamba_ssm's `Mamba`
// block with selective_scan_ref semantics and Hugging Face transformers' parameter names.
//
//   x: (B, L, D) → in_proj D→2E (no bias) → x, z (B, L, E) each
//   x → causal depthwise conv1d (width W, bias) → SiLU                       (B, L, E)
//   x_proj E→(R + 2N) (no bias) → dt (B, L, R), B (B, L, N), C (B, L, N)
//   [inner_norms: dt, B, C ← RMSNorm(dt), RMSNorm(B), RMSNorm(C), each over its own width]
//   Δ = softplus(dt_proj(dt)) with dt_proj R→E (bias, fused into the scan); A = −exp(A_log)
//   y = selective_scan(x, Δ, A, B, C, D) · SiLU(z); out = out_proj E→D (no bias)  (B, L, D)
// E = expand·D, R = dt_rank = ceil(D/16), N = d_state.
//
// Jamba (transformers' JambaMambaMixer) is this mixer with three options:
//   inner_norms  dt_layernorm (R), b_layernorm (N), c_layernorm (N): JambaRMSNorms (fp32,
//                x·rsqrt(mean(x²)+eps)·weight, eps = rms_norm_eps) applied right after x_proj's
//                split and before dt_proj / the scan, in its slow path and its CUDA path alike
//                (the CUDA path then calls selective_scan_fn with dt_proj's bias as delta_bias,
//                which is our fused bias; it cannot use mamba_inner_fn because of the norms).
//   proj_bias    mamba_proj_bias: in_proj and out_proj biases (zero at init, as transformers'
//                _init_weights leaves Linear biases).
//   conv_bias    mamba_conv_bias (true by default): conv1d's bias; off, the parameter is absent.
// dt_proj always has a bias and x_proj never does, in Jamba as here. The eps of the inner norms is
// norm_eps, the model's one RMSNorm epsilon (model.norm_eps; Jamba's rms_norm_eps serves its
// block norms and these alike), which the block's own RMSNorm uses too.
#pragma once
#include <array>

#include "magellano/nn/linear.hpp"
#include "magellano/nn/prefix_reversal.hpp"
#include "magellano/nn/rmsnorm.hpp"

namespace magellano::nn {

struct MambaConfig {
  int64_t dim = 0;        // D
  int64_t d_state = 16;   // N
  int64_t d_conv = 4;     // W
  int64_t expand = 2;     // E = expand * D
  int64_t dt_rank = 0;    // R; 0 means ceil(D / 16)
  double dt_min = 0.001, dt_max = 0.1, dt_init_floor = 1e-4;
  int64_t num_layers = 1;  // out_proj is scaled by 1/sqrt(num_layers)
  int scan_chunk = 64;     // steps between the scan's saved states (memory vs recompute)
  bool inner_norms = false;  // Jamba's RMSNorms of dt, B and C (see above)
  bool proj_bias = false;    // in_proj / out_proj biases (Jamba's mamba_proj_bias)
  bool conv_bias = true;     // conv1d bias (Jamba's mamba_conv_bias, HF Mamba's use_conv_bias)
  // Prefix-LM (MambaBlock::forward with prefix lengths): over the prefix the mixer also runs on
  // the prefix reversed, with the same parameters (all of them shared, as Caduceus's weight-tied
  // BiMamba), and the two directions are added: y[t] = fwd(x)[t] + rev(x)[t] for t < P, where
  // rev(x)[t] = mixer(x[P-1], x[P-2], ..., x[0])[P-1-t]; y[t] = fwd(x)[t] for t >= P, so suffix
  // positions, the state after the sequence and decoding are unchanged.
  bool bidirectional_prefix = false;
  float norm_eps = 1e-5f;    // the block's RMSNorm and the inner norms
  int64_t inner() const { return expand * dim; }
  int64_t rank() const { return dt_rank > 0 ? dt_rank : (dim + 15) / 16; }
};

// Δ's bias at initialisation (Mamba and Mamba2): n draws of the inverse softplus of
// dt = exp(U(log dt_min, log dt_max)) floored at `floor`, so softplus(bias) starts in [dt_min, dt_max].
std::vector<float> dt_bias_init(int64_t n, double dt_min, double dt_max, double floor, Init& init);

// The recurrent state of one layer for step-by-step decoding.
struct MambaState {
  Tensor conv;  // (B, E, W-1): the last W-1 inputs of the conv, oldest first
  Tensor ssm;   // (B, E, N)
  Tensor A;     // (E, N) = −exp(A_log): a constant of the decode, made by its first fused step
  Tensor dt_w;  // (E, R) an int4 dt_proj dequantized (2% of a block's weights), likewise
};

class MambaMixer : public Module {
 public:
  MambaMixer(Context& ctx, const MambaConfig& cfg, Init& init);
  // x: (B, L, D) -> (B, L, D). When `state` is given it receives the state after the last
  // position, exactly what step() would have built from the same inputs.
  Tensor forward(const Tensor& x, MambaState* state = nullptr) const;
  // One position, no autograd: x_t: (B, D) -> (B, D); `state` is updated in place.
  Tensor step(const Tensor& x_t, MambaState& state) const;
  MambaState empty_state(int64_t batch) const;  // zeros
  void collect(const std::string& prefix, std::vector<Parameter>& out) const override;
  void collect_linears(const std::string& prefix, std::vector<NamedLinear>& out) override;

  MambaConfig cfg;
  Linear in_proj, x_proj, dt_proj, out_proj;  // in_proj / out_proj with biases when cfg.proj_bias
  Tensor conv_weight;  // (E, 1, W), as PyTorch's Conv1d stores it
  Tensor conv_bias;    // (E), undefined without cfg.conv_bias
  Tensor A_log;        // (E, N)
  Tensor D;            // (E)
  // The inner norms' weights, undefined without cfg.inner_norms: "dt_layernorm.weight" (R),
  // "b_layernorm.weight" (N), "c_layernorm.weight" (N); init 1, trained, no weight decay.
  Tensor dt_norm, b_norm, c_norm;

 private:
  // x_proj's output (..., R + 2N) → Δ before its bias (..., E), B (..., N), C (..., N), through
  // the inner norms when on: the one place forward() and step() share.
  std::array<Tensor, 3> selection(const Tensor& xc) const;
};

// x + residual_scale · mixer(RMSNorm(x)); the residual stream stays fp32.
class MambaBlock : public Module {
 public:
  MambaBlock(Context& ctx, const MambaConfig& cfg, Init& init);
  // (B, L, D). reversal: the prefix gathers, used only with cfg.bidirectional_prefix.
  Tensor forward(const Tensor& x, MambaState* state = nullptr, const PrefixReversal& reversal = {}) const;
  // One position, no autograd: (B, D); the fused decode path (nn/decode_path.hpp) where it can run.
  Tensor step(const Tensor& x_t, MambaState& state) const;
  void collect(const std::string& prefix, std::vector<Parameter>& out) const override;
  void collect_linears(const std::string& prefix, std::vector<NamedLinear>& out) override;
  RMSNorm norm;
  MambaMixer mixer;
  float residual_scale = 1.0f;  // Granite's residual_multiplier

 private:
  bool fused_step(const Tensor& x_t) const;  // whether step() takes the fused decode path
};

}  // namespace magellano::nn
