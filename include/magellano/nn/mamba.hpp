// The Mamba (selective state space) mixer and its residual block, as mamba_ssm's `Mamba`
// block with selective_scan_ref semantics and Hugging Face transformers' parameter names.
//
//   x: (B, L, D) → in_proj D→2E (no bias) → x, z (B, L, E) each
//   x → causal depthwise conv1d (width W, bias) → SiLU                       (B, L, E)
//   x_proj E→(R + 2N) (no bias) → dt (B, L, R), B (B, L, N), C (B, L, N)
//   Δ = softplus(dt_proj(dt)) with dt_proj R→E (bias, fused into the scan); A = −exp(A_log)
//   y = selective_scan(x, Δ, A, B, C, D) · SiLU(z); out = out_proj E→D (no bias)  (B, L, D)
// E = expand·D, R = dt_rank = ceil(D/16), N = d_state.
#pragma once
#include "magellano/nn/linear.hpp"
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
  Linear in_proj, x_proj, dt_proj, out_proj;
  Tensor conv_weight;  // (E, 1, W), as PyTorch's Conv1d stores it
  Tensor conv_bias;    // (E)
  Tensor A_log;        // (E, N)
  Tensor D;            // (E)
};

// x + residual_scale · mixer(RMSNorm(x)); the residual stream stays fp32.
class MambaBlock : public Module {
 public:
  MambaBlock(Context& ctx, const MambaConfig& cfg, Init& init);
  Tensor forward(const Tensor& x, MambaState* state = nullptr) const;  // (B, L, D)
  Tensor step(const Tensor& x_t, MambaState& state) const;             // (B, D)
  void collect(const std::string& prefix, std::vector<Parameter>& out) const override;
  void collect_linears(const std::string& prefix, std::vector<NamedLinear>& out) override;
  RMSNorm norm;
  MambaMixer mixer;
  float residual_scale = 1.0f;  // Granite's residual_multiplier
};

}  // namespace magellano::nn
