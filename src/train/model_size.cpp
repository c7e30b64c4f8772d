// Parameter accounting and the training-memory model; the formulas are in model_size.hpp.
#include "magellano/train/model_size.hpp"

#include <algorithm>

#include "magellano/ops/ssd.hpp"
#include "magellano/optim/dynamic_map.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::train {
namespace {

// int64 arithmetic that throws instead of wrapping: the sizes come from user configs (each field
// range-checked by the config schema), and a model too large to count must be refused with one
// line, never reported with a negative total.
class Count {
 public:
  Count(int64_t v = 0) : v_(v) {}  // NOLINT: implicit, so formulas read as written
  int64_t value() const { return v_; }
  friend Count operator+(Count a, Count b) { return checked(__builtin_add_overflow(a.v_, b.v_, &a.v_), a); }
  friend Count operator-(Count a, Count b) { return checked(__builtin_sub_overflow(a.v_, b.v_, &a.v_), a); }
  friend Count operator*(Count a, Count b) { return checked(__builtin_mul_overflow(a.v_, b.v_, &a.v_), a); }
  friend Count operator/(Count a, Count b) { return a.v_ / b.v_; }  // b > 0 at every use
  friend bool operator<(Count a, Count b) { return a.v_ < b.v_; }

 private:
  static Count checked(bool overflow, Count result) {
    if (overflow)
      throw Error("the model's size does not fit in 64 bits (more than 9.2e18 parameters or bytes); "
                  "use a smaller model.dim, model.layers, model.vocab_size, model.moe.experts, "
                  "train.batch_size or train.seq_len.");
    return result;
  }
  int64_t v_;
};

Count max(Count a, Count b) { return a < b ? b : a; }

// The widths every formula uses (model_size.hpp's letters).
struct Widths {
  Count D, E, R, N, W, X, K, F, Fs, V, C;
  bool glu;
  explicit Widths(const ModelConfig& m)
      : D(m.dim), E(Count(m.expand) * m.dim), R(m.dt_rank > 0 ? m.dt_rank : (m.dim + 15) / 16),
        N(m.d_state), W(m.d_conv), X(m.moe.experts), K(m.moe.top_k), F(m.moe.hidden),
        Fs(m.moe.shared_expert_hidden), V(m.vocab_size), C(std::max<int64_t>(1, m.scan_chunk)),
        glu(m.moe.activation == ops::ExpertActivation::swiglu) {}
};

// One SwiGLU / GELU MLP (nn::Mlp) of width D and hidden F: its weight elements (w1, w2 and w3),
// what ops::expert_mlp keeps per token for the backward (h1, and h3), the Σ (in + out) of its
// Linears (LoRA parameters per rank), and its backward temporaries per token (dx, dy and the
// pre-activation gradients).
Count mlp_weights(Count D, Count F, bool glu) { return (glu ? 3 : 2) * F * D; }
Count mlp_kept(Count F, bool glu) { return F * (glu ? 2 : 1); }
Count mlp_lora_per_rank(Count D, Count F, bool glu) { return (glu ? 3 : 2) * (D + F); }
Count mlp_workspace(Count D, Count F) { return 2 * D + 2 * F; }

// The widths of one Mamba2 block: Di inner, H heads, C conv channels (x, B, C), I in_proj outputs.
struct Mamba2Widths {
  Count D, Di, P, H, G, N, K, C, I;
  explicit Mamba2Widths(const ModelConfig& m)
      : D(m.dim), Di(Count(m.mamba2.expand) * m.dim), P(m.mamba2.head_dim), H(Di / P), G(m.mamba2.n_groups),
        N(m.mamba2.d_state), K(m.mamba2.d_conv), C(Di + 2 * G * N), I(Di + C + H) {}
};

// The widths of one attention block: H query heads, KV kv heads of width d; Q = H·d, Kd = KV·d.
struct AttentionWidths {
  Count D, H, KV, d, Q, Kd;
  explicit AttentionWidths(const ModelConfig& m)
      : D(m.dim), H(m.attention.heads), KV(m.attention.kv_heads ? m.attention.kv_heads : m.attention.heads),
        d(m.attention.head_dim ? m.attention.head_dim : m.dim / std::max<int64_t>(1, m.attention.heads)),
        Q(H * d), Kd(KV * d) {}
};

// Elements of every Linear weight of one Mamba, Mamba2, attention and MoE block.
Count mamba_linear(const Widths& w) { return 2 * w.E * w.D + (w.R + 2 * w.N) * w.E + w.E * w.R + w.D * w.E; }
// Elements the Mamba ('M') block options add: proj biases, conv bias, inner norms.
Count mamba_options(const ModelConfig& m, const Widths& w) {
  return (m.mamba_proj_bias ? 2 * w.E + w.D : Count(0)) + (m.mamba_conv_bias ? w.E : Count(0)) +
         (m.mamba_inner_norms ? w.R + 2 * w.N : Count(0));
}
Count mamba2_linear(const Mamba2Widths& s) { return s.I * s.D + s.D * s.Di; }  // in_proj, out_proj
Count attention_linear(const AttentionWidths& a) { return 2 * a.Q * a.D + 2 * a.Kd * a.D; }  // q, k, v, o
Count moe_linear(const Widths& w) {
  return w.X * w.D + w.X * mlp_weights(w.D, w.F, w.glu) + mlp_weights(w.D, w.Fs, w.glu);
}

}  // namespace

ParamCounts count_params(const ModelConfig& m) {
  const Widths w(m);
  const Count mamba_block = w.D                 // norm
                            + 2 * w.E * w.D     // in_proj
                            + w.E * w.W         // conv1d weight
                            + (w.R + 2 * w.N) * w.E  // x_proj
                            + w.E * w.R + w.E   // dt_proj weight, bias
                            + w.E * w.N + w.E   // A_log, D
                            + w.D * w.E         // out_proj
                            + mamba_options(m, w);  // in/out_proj biases, conv1d bias, inner norms
  const Mamba2Widths s(m);
  const bool bias = m.mamba2.bias;
  const Count mamba2_block = s.D                                        // norm
                             + s.I * s.D + (bias ? s.I : 0)             // in_proj
                             + s.C * s.K + (m.mamba2.conv_bias ? s.C : 0)  // conv1d weight, bias
                             + 3 * s.H                                  // dt_bias, A_log, D
                             + s.Di                                     // gated norm
                             + s.D * s.Di + (bias ? s.D : 0);           // out_proj
  const AttentionWidths a(m);
  const Count attention_block = a.D + attention_linear(a);  // norm, q/k/v/o_proj
  const Count expert = mlp_weights(w.D, w.F, w.glu), shared_expert = mlp_weights(w.D, w.Fs, w.glu);
  const Count moe_block = w.D + w.X * w.D + w.X * expert + shared_expert;
  const Count mamba_layers = m.num_mamba(), mamba2_layers = m.num_mamba2(), moe_layers = m.num_moe(),
              attention_layers = m.num_attention(), mlp_layers = m.num_mlp();
  const Count mlp_block = mlp_block_size(m.mlp_config(), 0).params;
  const Count embedding = w.V * w.D, lm_head = m.tie_embeddings ? Count(0) : w.V * w.D;
  const Count total = embedding + w.D + lm_head + mamba_layers * mamba_block + mamba2_layers * mamba2_block +
                      attention_layers * attention_block + moe_layers * moe_block + mlp_layers * mlp_block;
  ParamCounts p;
  p.attention_layers = attention_layers.value();
  p.mlp_layers = mlp_layers.value();
  p.mlp_block = mlp_block.value();
  p.attention_block = attention_block.value();
  p.mamba_layers = mamba_layers.value();
  p.mamba2_layers = mamba2_layers.value();
  p.moe_layers = moe_layers.value();
  p.mamba_block = mamba_block.value();
  p.mamba2_block = mamba2_block.value();
  p.expert = expert.value();
  p.shared_expert = shared_expert.value();
  p.moe_block = moe_block.value();
  p.embedding = embedding.value();
  p.final_norm = m.dim;
  p.lm_head = lm_head.value();
  p.total = p.trainable = total.value();
  p.active_per_token = (total - moe_layers * (w.X - w.K) * expert).value();
  return p;
}

MemoryEstimate estimate_memory(const ModelConfig& m, int64_t batch, int64_t seq_len) {
  const Widths w(m);
  const Count B = batch, T = Count(batch) * seq_len, f = 4;  // tokens, bytes per float (and per i32)
  const ParamCounts p = count_params(m);
  const Count P = p.total, mamba_layers = p.mamba_layers, mamba2_layers = p.mamba2_layers,
              moe_layers = p.moe_layers;
  MemoryEstimate e;
  e.batch = batch;
  e.seq_len = seq_len;
  e.weights = (P * f).value();
  e.gradients = (P * f).value();
  e.optimizer_state = (2 * P * f).value();
  const Count chunks = (Count(seq_len) + w.C - 1) / w.C;
  const Count inner_norms = m.mamba_inner_norms ? w.R + 2 * w.N + 3 : Count(0);  // normed dt, B, C; 3 rstd
  const Count mamba_acts =
      mamba_layers * (T * (2 * w.D + 6 * w.E + w.R + 2 * w.N + 1 + inner_norms) + 2 * w.E * w.N) * f;
  const Count scan_states = mamba_layers * B * chunks * w.N * w.E * f;
  const Mamba2Widths s(m);
  const Count Q = ops::ssd_chunk_for_length(m.mamba2.chunk_size ? m.mamba2.chunk_size : ops::kSsdDefaultChunk,
                                            seq_len),
              ssd_chunks = (Count(seq_len) + Q - 1) / Q;
  const Count mamba2_acts = mamba2_layers *
                            (T * (2 * s.D + 1 + 3 * s.Di + 3 * s.C + 3 * s.H + s.G) +
                             B * s.H * ssd_chunks * (s.N * s.P + 1)) * f;
  // Per attention layer: the block input, its norm output and rstd (2D + 1); q, k (after rope:
  // the rotation's backward needs nothing, so the projections' outputs are not kept) and v
  // (Q + 2Kd); the attention output (Q) and its log-sum-exp (H), never an L × L matrix.
  const AttentionWidths a(m);
  const Count attention_acts = Count(p.attention_layers) * T * (2 * a.D + 1 + 2 * a.Q + 2 * a.Kd + a.H) * f;
  const Count moe_acts =
      moe_layers * T * (2 * w.D + 2 + 2 * w.X + w.K * (2 * w.D + mlp_kept(w.F, w.glu) + 5) + mlp_kept(w.Fs, w.glu)) * f;
  const Count head = (T * (2 * w.D + 2) + 2 * T * w.V) * f;
  Count ws = 0;
  if (p.mamba_layers) ws = max(ws, T * (6 * w.E + 2 * w.N) + w.C * w.N * B * w.E);
  if (p.mamba2_layers)
    ws = max(ws, T * (3 * s.Di + 4 * s.C + 4 * s.H + 2 * s.H * s.N) + B * ssd_chunks * (s.G * Q * Q + s.H * s.N * s.P));
  if (p.moe_layers) ws = max(ws, max(T * w.K * mlp_workspace(w.D, w.F), w.Fs.value() ? T * mlp_workspace(w.D, w.Fs) : Count(0)));
  if (p.attention_layers) ws = max(ws, T * (2 * a.Q + 2 * a.Kd + a.H));  // dO, dQ, dK, dV, rowsum(dO·O)
  const MlpBlockSize mlp = mlp_block_size(m.mlp_config(), T.value());
  const Count mlp_acts = Count(p.mlp_layers) * mlp.activation_bytes;
  if (p.mlp_layers) ws = max(ws, Count(mlp.workspace_bytes) / f);
  const Count workspace = (ws + 2 * T * w.D) * f;
  const Count activations =
      mamba_acts + scan_states + mamba2_acts + attention_acts + mlp_acts + moe_acts + head + workspace;
  e.mamba_activations = mamba_acts.value();
  e.attention_activations = attention_acts.value();
  e.mlp_activations = mlp_acts.value();
  e.scan_states = scan_states.value();
  e.mamba2_activations = mamba2_acts.value();
  e.moe_activations = moe_acts.value();
  e.head = head.value();
  e.workspace = workspace.value();
  e.activations = activations.value();
  e.total = (Count(e.weights) + e.gradients + e.optimizer_state + activations).value();
  return e;
}

LoRACounts count_lora(const Config& c) {
  const ModelConfig& m = c.model;
  const Widths w(m);
  const Count r = c.lora.rank;
  auto on = [&](const char* kind) {
    return c.lora.enabled() && std::find(c.lora.target_modules.begin(), c.lora.target_modules.end(),
                                         std::string(kind)) != c.lora.target_modules.end();
  };
  // (in, out) of each Linear kind
  const Count mamba_lora = (on("in_proj") ? r * (w.D + 2 * w.E) : 0) + (on("x_proj") ? r * (w.E + w.R + 2 * w.N) : 0) +
                           (on("dt_proj") ? r * (w.R + w.E) : 0) + (on("out_proj") ? r * (w.E + w.D) : 0);
  const Mamba2Widths s(m);
  const Count mamba2_lora = (on("in_proj") ? r * (w.D + s.I) : 0) + (on("out_proj") ? r * (s.Di + w.D) : 0);
  const AttentionWidths a(m);
  const Count attention_lora = (on("q_proj") ? r * (a.D + a.Q) : 0) + (on("k_proj") ? r * (a.D + a.Kd) : 0) +
                               (on("v_proj") ? r * (a.D + a.Kd) : 0) + (on("o_proj") ? r * (a.Q + a.D) : 0);
  const Count moe_lora = (on("gate") ? r * (w.D + w.X) : 0) + (on("experts") ? w.X * r * mlp_lora_per_rank(w.D, w.F, w.glu) : 0) +
                         (on("shared_expert") && w.Fs.value() ? r * mlp_lora_per_rank(w.D, w.Fs, w.glu) : 0);
  const MlpBlockSize mlp = mlp_block_size(m.mlp_config(), 0);
  const Count mlp_lora = on("mlp") ? r * mlp.lora_per_rank : 0;
  LoRACounts out;
  out.lora = (Count(m.num_mamba()) * mamba_lora + Count(m.num_mamba2()) * mamba2_lora +
              Count(m.num_attention()) * attention_lora + Count(m.num_moe()) * moe_lora + Count(m.num_mlp()) * mlp_lora)
                 .value();
  out.linear_weights = (Count(m.num_mamba()) * mamba_linear(w) + Count(m.num_mamba2()) * mamba2_linear(s) +
                        Count(m.num_attention()) * attention_linear(a) + Count(m.num_moe()) * moe_linear(w) +
                        Count(m.num_mlp()) * mlp.linear_weights)
                           .value();
  return out;
}

ParamCounts count_params(const Config& c) {
  ParamCounts p = count_params(c.model);
  if (c.lora.enabled()) p.trainable = count_lora(c).lora;
  return p;
}

MemoryEstimate estimate_memory(const Config& c) { return estimate_rank_memory(c, 1); }

MemoryEstimate estimate_rank_memory(const Config& c, int64_t ranks) {
  if (ranks < 1) throw Error("estimate_rank_memory: ranks must be >= 1, got " + std::to_string(ranks) + ".");
  const ModelConfig& m = c.model;
  const Count B = c.train.batch_size, L = c.train.seq_len, T = B * L, f = 4;
  MemoryEstimate e = estimate_memory(m, c.train.batch_size, c.train.seq_len);
  const ParamCounts p = count_params(c);
  const LoRACounts lc = count_lora(c);
  if (c.lora.enabled()) {  // the frozen base's Linear weights at their storage's bytes per element
    const Count base = c.lora.base_precision == nn::WeightStorage::f16   ? Count(lc.linear_weights) * 2
                       : c.lora.base_precision == nn::WeightStorage::nf4 ? Count(static_cast<int64_t>(lc.linear_weights * (4.127 / 8)))
                       : c.lora.base_precision == nn::WeightStorage::int4  // 4 bits + an fp16 scale per group
                           ? Count(static_cast<int64_t>(lc.linear_weights * (0.5 + 2.0 / static_cast<double>(c.lora.int4_group_size))))
                                                                          : Count(lc.linear_weights) * 4;
    e.weights = ((Count(p.total) - lc.linear_weights) * f + base + Count(lc.lora) * f).value();
    e.gradients = (Count(lc.lora) * f).value();
    e.optimizer_state = (2 * Count(lc.lora) * f).value();
  }
  if (c.train.param_dtype == DType::f16) {  // matrix weights and their gradients at 2 bytes
    const Count matrices = Count(lc.linear_weights) + p.embedding + p.lm_head;
    e.weights = e.gradients = ((Count(p.total) - matrices) * f + matrices * 2).value();
    // One matrix at a time is widened to fp32 for its product (or has its fp32 gradient
    // computed before the fp16 one takes it): the largest, usually the LM head.
    const Widths w(m);
    const Count mamba2_in = m.num_mamba2() > 0 ? Mamba2Widths(m).I * w.D : Count(0);
    const Count attention_q = m.num_attention() > 0 ? AttentionWidths(m).Q * w.D : Count(0);
    const Count mlp_w = m.num_mlp() > 0 ? Count(m.mlp_config().hidden) * w.D : Count(0);
    e.workspace =
        (Count(e.workspace) +
         max(max(max(max(max(max(w.V * w.D, 2 * w.E * w.D), w.F * w.D), w.Fs * w.D), mamba2_in), attention_q), mlp_w) *
             f)
            .value();
  }
  const Count k = c.train.gradient_checkpointing;
  const Count layers = Count(p.mamba_layers) + p.mamba2_layers + p.attention_layers + p.mlp_layers + p.moe_layers;
  if (k.value() > 0 && layers.value() > 0) {
    const Count per_mamba = p.mamba_layers ? (Count(e.mamba_activations) + e.scan_states) / p.mamba_layers : 0;
    const Count per_mamba2 = p.mamba2_layers ? Count(e.mamba2_activations) / p.mamba2_layers : 0;
    const Count per_moe = p.moe_layers ? Count(e.moe_activations) / p.moe_layers : 0;
    const Count per_attention = p.attention_layers ? Count(e.attention_activations) / p.attention_layers : 0;
    const Count per_mlp = p.mlp_layers ? Count(e.mlp_activations) / p.mlp_layers : 0;
    const Count seg =
        (k < layers ? k : layers) * max(max(max(max(per_mamba, per_mamba2), per_moe), per_attention), per_mlp);
    const Count input_bytes = dtype_size(c.train.activation_dtype);
    const Count inputs = (layers + k - 1) / k * T * m.dim * input_bytes;
    const Count all =
        Count(e.mamba_activations) + e.scan_states + e.mamba2_activations + e.attention_activations +
        e.mlp_activations + e.moe_activations;
    const double scale = double(seg.value()) / double(std::max<int64_t>(1, all.value()));
    // Each part scaled is at most seg (a part is at most `all`), which fits: the casts cannot overflow.
    const auto scaled = [&](int64_t part) { return static_cast<int64_t>(std::min(double(part) * scale, 9.2e18)); };
    e.mamba_activations = (Count(scaled(e.mamba_activations)) + inputs).value();
    e.scan_states = scaled(e.scan_states);
    e.mamba2_activations = scaled(e.mamba2_activations);
    e.moe_activations = scaled(e.moe_activations);
    e.attention_activations = scaled(e.attention_activations);
    e.mlp_activations = scaled(e.mlp_activations);
  }
  if (c.lora.enabled()) {  // dropout output and the (T, r) intermediate per adapter, in the kept layers
    const Count kept = k.value() > 0 ? (k < layers ? k : layers) : layers;
    const Count per_layer = (lc.lora > 0 && layers.value() > 0) ? 4 * T * (Count(c.lora.rank) + (c.lora.dropout > 0 ? m.dim : 0)) : 0;
    e.workspace = (Count(e.workspace) + kept * per_layer * f).value();
  }
  const Count activations = Count(e.mamba_activations) + e.scan_states + e.mamba2_activations +
                            e.attention_activations + e.mlp_activations + e.moe_activations + e.head + e.workspace;
  e.activations = activations.value();
  // AdamW's moments: two per trained element (fp32 above). int8: a code byte each plus an fp32
  // absmax per 256; host placement keeps them in host memory and stages one page of each on
  // the device (optim::AdamWConfig::page_elements, the pack's padding ignored).
  Count moments = Count(e.optimizer_state) / 8;
  if (c.train.zero_stage == 1 && ranks > 1) {  // ZeRO stage 1: the largest rank's share
    const Count block = optim::kQuantBlock;
    const Count share = ((moments + Count(ranks - 1)) / Count(ranks) + block - 1) / block * block;
    if (share < moments) moments = share;
  }
  const auto state_bytes = [&](Count elements) {
    return c.train.optimizer_states == optim::StateFormat::int8
               ? 2 * elements + 8 * ((elements + Count(optim::kQuantBlock - 1)) / Count(optim::kQuantBlock))
               : 8 * elements;
  };
  e.optimizer_state = state_bytes(moments).value();
  if (c.train.optimizer_offload == optim::StatePlacement::host) {
    e.optimizer_host = e.optimizer_state;
    const Count page = optim::AdamWConfig{}.page_elements;
    e.optimizer_state = state_bytes(moments < page ? moments : page).value();
  }
  e.total = (Count(e.weights) + e.gradients + e.optimizer_state + activations).value();
  return e;
}

MlpBlockSize mlp_block_size(const nn::MlpConfig& c, int64_t tokens) {
  const Count D = c.dim, F = c.hidden, T = tokens, f = 4;
  MlpBlockSize s;
  s.linear_weights = mlp_weights(D, F, c.swiglu).value();
  s.params = (D + s.linear_weights).value();  // norm + w1, w2, w3
  s.lora_per_rank = mlp_lora_per_rank(D, F, c.swiglu).value();
  // the block input and its norm output (2D), rstd (1), h1 (and h3)
  s.activation_bytes = (T * (2 * D + 1 + mlp_kept(F, c.swiglu)) * f).value();
  s.workspace_bytes = (T * mlp_workspace(D, F) * f).value();
  return s;
}

nlohmann::json to_json(const ParamCounts& p) {
  return {{"total", p.total},           {"trainable", p.trainable},
          {"active_per_token", p.active_per_token},
          {"embedding", p.embedding},   {"lm_head", p.lm_head},
          {"mamba_block", p.mamba_block}, {"mamba2_block", p.mamba2_block},
          {"moe_block", p.moe_block},   {"expert", p.expert},
          {"shared_expert", p.shared_expert},
          {"final_norm", p.final_norm}, {"mamba_layers", p.mamba_layers},
          {"mamba2_layers", p.mamba2_layers}, {"moe_layers", p.moe_layers},
          {"attention_block", p.attention_block}, {"attention_layers", p.attention_layers},
          {"mlp_block", p.mlp_block}, {"mlp_layers", p.mlp_layers}};
}

nlohmann::json to_json(const MemoryEstimate& m) {
  return {{"weights", m.weights},
          {"gradients", m.gradients},
          {"optimizer_state", m.optimizer_state},
          {"optimizer_host", m.optimizer_host},
          {"activations", m.activations},
          {"total", m.total},
          {"activation_parts",
           {{"mamba", m.mamba_activations},
            {"scan_states", m.scan_states},
            {"mamba2", m.mamba2_activations},
            {"attention", m.attention_activations},
            {"mlp", m.mlp_activations},
            {"moe", m.moe_activations},
            {"head", m.head},
            {"workspace", m.workspace}}},
          {"batch", m.batch},
          {"seq_len", m.seq_len}};
}

}  // namespace magellano::train
