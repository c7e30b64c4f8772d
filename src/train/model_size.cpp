// Parameter accounting and the training-memory model; the formulas are in model_size.hpp.
#include "magellano/train/model_size.hpp"

#include <algorithm>

#include "magellano/ops/ssd.hpp"

namespace magellano::train {
namespace {

// The sizes of one Mamba2 block: Di inner, H heads, C conv channels, I = in_proj outputs.
struct Mamba2Sizes {
  int64_t D, Di, P, H, G, N, K, C, I;
  explicit Mamba2Sizes(const ModelConfig& m)
      : D(m.dim), Di(m.mamba2.inner(m.dim)), P(m.mamba2.head_dim), H(Di / P), G(m.mamba2.n_groups),
        N(m.mamba2.d_state), K(m.mamba2.d_conv), C(Di + 2 * G * N), I(Di + C + H) {}
  int64_t linear_weights() const { return I * D + D * Di; }  // in_proj, out_proj
};

}  // namespace

ParamCounts count_params(const ModelConfig& m) {
  const int64_t D = m.dim, E = m.expand * m.dim, R = m.dt_rank > 0 ? m.dt_rank : (m.dim + 15) / 16,
                N = m.d_state, W = m.d_conv, X = m.moe.experts, K = m.moe.top_k, F = m.moe.hidden,
                V = m.vocab_size;
  const bool glu = m.moe.activation == ops::ExpertActivation::swiglu;
  ParamCounts p;
  p.mamba_layers = m.num_mamba();
  p.mamba2_layers = m.num_mamba2();
  p.moe_layers = m.num_moe();
  p.mamba_block = D                 // norm
                  + 2 * E * D       // in_proj
                  + E * W + E       // conv1d weight, bias
                  + (R + 2 * N) * E // x_proj
                  + E * R + E       // dt_proj weight, bias
                  + E * N + E       // A_log, D
                  + D * E;          // out_proj
  const Mamba2Sizes s(m);
  const bool bias = m.mamba2.bias;
  p.mamba2_block = s.D                                 // norm
                   + s.I * s.D + (bias ? s.I : 0)      // in_proj
                   + s.C * s.K + (m.mamba2.conv_bias ? s.C : 0)  // conv1d weight, bias
                   + 3 * s.H                           // dt_bias, A_log, D
                   + s.Di                              // gated norm
                   + s.D * s.Di + (bias ? s.D : 0);    // out_proj
  p.expert = (glu ? 3 : 2) * F * D;
  p.moe_block = D + X * D + X * p.expert;
  p.embedding = V * D;
  p.final_norm = D;
  p.lm_head = m.tie_embeddings ? 0 : V * D;
  p.total = p.embedding + p.final_norm + p.lm_head + p.mamba_layers * p.mamba_block +
            p.mamba2_layers * p.mamba2_block + p.moe_layers * p.moe_block;
  p.trainable = p.total;
  p.active_per_token = p.total - p.moe_layers * (X - K) * p.expert;
  return p;
}

MemoryEstimate estimate_memory(const ModelConfig& m, int64_t batch, int64_t seq_len) {
  const int64_t D = m.dim, E = m.expand * m.dim, R = m.dt_rank > 0 ? m.dt_rank : (m.dim + 15) / 16,
                N = m.d_state, X = m.moe.experts, K = m.moe.top_k, F = m.moe.hidden,
                V = m.vocab_size, C = std::max<int64_t>(1, m.scan_chunk);
  const bool glu = m.moe.activation == ops::ExpertActivation::swiglu;
  const int64_t T = batch * seq_len, f = 4;  // tokens, bytes per float (and per i32)
  const ParamCounts p = count_params(m);
  MemoryEstimate e;
  e.batch = batch;
  e.seq_len = seq_len;
  e.weights = p.total * f;
  e.gradients = p.trainable * f;
  e.optimizer_state = 2 * p.trainable * f;
  const int64_t chunks = (seq_len + C - 1) / C;
  e.mamba_activations = p.mamba_layers * (T * (2 * D + 6 * E + R + 2 * N + 1) + 2 * E * N) * f;
  e.scan_states = p.mamba_layers * batch * chunks * N * E * f;
  const Mamba2Sizes s(m);
  const int64_t Q = ops::ssd_chunk_for_length(m.mamba2.chunk_size ? m.mamba2.chunk_size : ops::kSsdDefaultChunk,
                                              seq_len),
                ssd_chunks = (seq_len + Q - 1) / Q;
  e.mamba2_activations = p.mamba2_layers *
                         (T * (2 * s.D + 1 + 3 * s.Di + 3 * s.C + 3 * s.H + s.G) +
                          batch * s.H * ssd_chunks * (s.N * s.P + 1)) * f;
  e.moe_activations = p.moe_layers * T * (2 * D + 2 + 2 * X + K * (2 * D + F * (glu ? 2 : 1) + 5)) * f;
  e.head = (T * (2 * D + 2) + 2 * T * V) * f;
  int64_t ws = 0;
  if (p.mamba_layers) ws = std::max(ws, T * (6 * E + 2 * N) + C * N * batch * E);
  if (p.mamba2_layers)
    ws = std::max(ws, T * (3 * s.Di + 4 * s.C + 4 * s.H + 2 * s.H * s.N) +
                          batch * ssd_chunks * (s.G * Q * Q + s.H * s.N * s.P));
  if (p.moe_layers) ws = std::max(ws, T * K * (2 * D + 2 * F));
  e.workspace = (ws + 2 * T * D) * f;
  e.activations = e.mamba_activations + e.scan_states + e.mamba2_activations + e.moe_activations + e.head +
                  e.workspace;
  e.total = e.weights + e.gradients + e.optimizer_state + e.activations;
  return e;
}

LoRACounts count_lora(const Config& c) {
  const ModelConfig& m = c.model;
  const int64_t D = m.dim, E = m.expand * m.dim, R = m.dt_rank > 0 ? m.dt_rank : (m.dim + 15) / 16,
                N = m.d_state, X = m.moe.experts, F = m.moe.hidden;
  const bool glu = m.moe.activation == ops::ExpertActivation::swiglu;
  const int64_t r = c.lora.rank;
  auto on = [&](const char* kind) {
    return c.lora.enabled() && std::find(c.lora.target_modules.begin(), c.lora.target_modules.end(),
                                         std::string(kind)) != c.lora.target_modules.end();
  };
  LoRACounts out;
  // (in, out) of each Linear kind
  const int64_t mamba_lora = (on("in_proj") ? r * (D + 2 * E) : 0) + (on("x_proj") ? r * (E + R + 2 * N) : 0) +
                             (on("dt_proj") ? r * (R + E) : 0) + (on("out_proj") ? r * (E + D) : 0);
  const Mamba2Sizes s(m);
  const int64_t mamba2_lora = (on("in_proj") ? r * (D + s.I) : 0) + (on("out_proj") ? r * (s.Di + D) : 0);
  const int64_t moe_lora = (on("gate") ? r * (D + X) : 0) + (on("experts") ? X * (glu ? 3 : 2) * r * (D + F) : 0);
  out.lora = m.num_mamba() * mamba_lora + m.num_mamba2() * mamba2_lora + m.num_moe() * moe_lora;
  out.linear_weights = m.num_mamba() * (2 * E * D + (R + 2 * N) * E + E * R + D * E) +
                       m.num_mamba2() * s.linear_weights() + m.num_moe() * (X * D + X * (glu ? 3 : 2) * F * D);
  return out;
}

ParamCounts count_params(const Config& c) {
  ParamCounts p = count_params(c.model);
  if (c.lora.enabled()) p.trainable = count_lora(c).lora;
  return p;
}

MemoryEstimate estimate_memory(const Config& c) {
  const ModelConfig& m = c.model;
  const int64_t B = c.train.batch_size, L = c.train.seq_len, T = B * L, f = 4;
  MemoryEstimate e = estimate_memory(m, B, L);
  const ParamCounts p = count_params(c);
  if (c.lora.enabled()) {
    const LoRACounts lc = count_lora(c);
    const double per = c.lora.base_precision == nn::WeightStorage::f16   ? 2.0
                       : c.lora.base_precision == nn::WeightStorage::nf4 ? 4.127 / 8
                                                                          : 4.0;
    e.weights = (p.total - lc.linear_weights) * f + static_cast<int64_t>(lc.linear_weights * per) + lc.lora * f;
    e.gradients = lc.lora * f;
    e.optimizer_state = 2 * lc.lora * f;
  }
  if (c.train.param_dtype == DType::f16) {  // matrix weights and their gradients at 2 bytes
    const ModelConfig& mc = c.model;
    const int64_t matrices = count_lora(c).linear_weights + p.embedding + p.lm_head;
    e.weights = e.gradients = (p.total - matrices) * f + matrices * 2;
    // One matrix at a time is widened to fp32 for its product (or has its fp32 gradient
    // computed before the fp16 one takes it): the largest, usually the LM head.
    const int64_t E = mc.expand * mc.dim;
    const int64_t mamba2_in = mc.num_mamba2() > 0 ? Mamba2Sizes(mc).I * mc.dim : 0;
    e.workspace += std::max({mc.vocab_size * mc.dim, 2 * E * mc.dim, mc.moe.hidden * mc.dim, mamba2_in}) * f;
  }
  const int64_t k = c.train.gradient_checkpointing;
  const int64_t layers = p.mamba_layers + p.mamba2_layers + p.moe_layers;
  if (k > 0 && layers > 0) {
    const int64_t per_mamba = p.mamba_layers ? (e.mamba_activations + e.scan_states) / p.mamba_layers : 0;
    const int64_t per_mamba2 = p.mamba2_layers ? e.mamba2_activations / p.mamba2_layers : 0;
    const int64_t per_moe = p.moe_layers ? e.moe_activations / p.moe_layers : 0;
    const int64_t seg = std::min(k, layers) * std::max({per_mamba, per_mamba2, per_moe});
    const int64_t input_bytes = dtype_size(c.train.activation_dtype);
    const int64_t inputs = (layers + k - 1) / k * T * m.dim * input_bytes;
    const double scale = double(seg) / double(std::max<int64_t>(
                                           1, e.mamba_activations + e.scan_states + e.mamba2_activations + e.moe_activations));
    e.mamba_activations = static_cast<int64_t>(e.mamba_activations * scale) + inputs;
    e.scan_states = static_cast<int64_t>(e.scan_states * scale);
    e.mamba2_activations = static_cast<int64_t>(e.mamba2_activations * scale);
    e.moe_activations = static_cast<int64_t>(e.moe_activations * scale);
  }
  if (c.lora.enabled()) {  // dropout output and the (T, r) intermediate per adapter, in the kept layers
    const int64_t kept = k > 0 ? std::min(k, layers) : layers;
    const int64_t per_layer = (count_lora(c).lora > 0 && layers > 0) ? 4 * T * (c.lora.rank + (c.lora.dropout > 0 ? m.dim : 0)) : 0;
    e.workspace += kept * per_layer * f;
  }
  e.activations = e.mamba_activations + e.scan_states + e.mamba2_activations + e.moe_activations + e.head +
                  e.workspace;
  e.total = e.weights + e.gradients + e.optimizer_state + e.activations;
  return e;
}

nlohmann::json to_json(const ParamCounts& p) {
  return {{"total", p.total},           {"trainable", p.trainable},
          {"active_per_token", p.active_per_token},
          {"embedding", p.embedding},   {"lm_head", p.lm_head},
          {"mamba_block", p.mamba_block}, {"mamba2_block", p.mamba2_block},
          {"moe_block", p.moe_block},   {"expert", p.expert},
          {"final_norm", p.final_norm}, {"mamba_layers", p.mamba_layers},
          {"mamba2_layers", p.mamba2_layers}, {"moe_layers", p.moe_layers}};
}

nlohmann::json to_json(const MemoryEstimate& m) {
  return {{"weights", m.weights},
          {"gradients", m.gradients},
          {"optimizer_state", m.optimizer_state},
          {"activations", m.activations},
          {"total", m.total},
          {"activation_parts",
           {{"mamba", m.mamba_activations},
            {"scan_states", m.scan_states},
            {"mamba2", m.mamba2_activations},
            {"moe", m.moe_activations},
            {"head", m.head},
            {"workspace", m.workspace}}},
          {"batch", m.batch},
          {"seq_len", m.seq_len}};
}

}  // namespace magellano::train
