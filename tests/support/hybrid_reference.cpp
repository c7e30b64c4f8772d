#include "hybrid_reference.hpp"

#include <algorithm>
#include <cmath>

#include "harness.hpp"
#include "magellano/ops/elementwise.hpp"
#include "mamba2_reference.hpp"

namespace mgtest::ref {
namespace mt = magellano::train;
using magellano::Tensor;

namespace {

bool ends_with(const std::string& s, const std::string& t) {
  return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
}

const Vec& at(const Weights& w, const std::string& name) {
  const auto it = w.find(name);
  if (it == w.end()) throw std::runtime_error("reference: no weight " + name);
  return it->second;
}
Vec maybe(const Weights& w, const std::string& name) {
  const auto it = w.find(name);
  return it == w.end() ? Vec() : it->second;
}

// Mamba (Jamba's options included): xn (M, D) -> (M, D).
Vec mamba_mixer(const mt::ModelConfig& m, const Weights& w, const std::string& p, const Vec& xn, int64_t b,
                int64_t l) {
  const int64_t M = b * l, D = m.dim, E = m.expand * D, R = m.dt_rank, N = m.d_state, P = R + 2 * N;
  const Vec xz = linear(xn, M, D, at(w, p + "in_proj.weight"), 2 * E, maybe(w, p + "in_proj.bias"));
  const Vec xs = cols(xz, M, 2 * E, 0, E), z = cols(xz, M, 2 * E, E, E);
  const Vec xc = silu(conv(xs, b, l, E, at(w, p + "conv1d.weight"), m.d_conv, maybe(w, p + "conv1d.bias")));
  const Vec dbl = linear(xc, M, E, at(w, p + "x_proj.weight"), P);
  Vec dt = cols(dbl, M, P, 0, R), Bm = cols(dbl, M, P, R, N), Cm = cols(dbl, M, P, R + N, N);
  if (m.mamba_inner_norms) {
    dt = rmsnorm(dt, M, R, at(w, p + "dt_layernorm.weight"), m.norm_eps);
    Bm = rmsnorm(Bm, M, N, at(w, p + "b_layernorm.weight"), m.norm_eps);
    Cm = rmsnorm(Cm, M, N, at(w, p + "c_layernorm.weight"), m.norm_eps);
  }
  const Vec delta = linear(dt, M, R, at(w, p + "dt_proj.weight"), E);
  Vec A = at(w, p + "A_log");
  for (auto& a : A) a = -std::exp(a);
  const Vec y = scan({b, l, E, N}, {xc, delta, A, Bm, Cm, at(w, p + "D"), z, at(w, p + "dt_proj.bias")});
  return linear(y, M, E, at(w, p + "out_proj.weight"), D, maybe(w, p + "out_proj.bias"));
}

// Mamba2, through the block reference: mixer(xn) = block(x) - x with the block's norm given.
Vec mamba2_mixer(const mt::ModelConfig& m, const Weights& w, const std::string& p, const Vec& h, int64_t b,
                 int64_t l) {
  const auto& s2 = m.mamba2;
  Mamba2Dims s{b, l, m.dim, s2.expand * m.dim, s2.head_dim, s2.n_groups, s2.d_state, s2.d_conv};
  s.bias = s2.bias, s.conv_bias = s2.conv_bias, s.lo = s2.dt_lo, s.hi = s2.dt_hi, s.eps = m.norm_eps;
  Mamba2Weights mw;
  for (auto& f : mw.fields(s)) *f.values = at(w, p + f.name);
  Vec out = mamba2_block(s, mw, h);
  for (size_t i = 0; i < out.size(); ++i) out[i] -= h[i];
  return out;
}

Vec attention_mixer(const mt::ModelConfig& m, const Weights& w, const std::string& p, const Vec& xn, int64_t b,
                    int64_t l, const std::vector<int64_t>& prefix) {
  const auto& a = m.attention;
  const int64_t M = b * l, D = m.dim, H = a.heads, KV = a.kv_heads ? a.kv_heads : H,
                d = a.head_dim ? a.head_dim : D / H;
  Vec q = linear(xn, M, D, at(w, p + "q_proj.weight"), H * d);
  Vec k = linear(xn, M, D, at(w, p + "k_proj.weight"), KV * d);
  const Vec v = linear(xn, M, D, at(w, p + "v_proj.weight"), KV * d);
  if (a.rope_theta != 0.0) {
    q = rope(q, b, l, H, d, a.rope_theta, 0);
    k = rope(k, b, l, KV, d, a.rope_theta, 0);
  }
  const double scale = a.scale > 0 ? a.scale : 1.0 / std::sqrt(double(d));
  const Vec o = attention({b, l, H, KV, d, scale, true, prefix}, q, k, v);
  return linear(o, M, H * d, at(w, p + "o_proj.weight"), D);
}

// One SwiGLU / GELU MLP under prefix q ("mlp.", "moe.shared_expert.", "moe.experts.3.") on a row.
void mlp_row(const Weights& w, const std::string& q, const double* x, int64_t d, int64_t f, ExpertRow& row) {
  const Vec w3 = maybe(w, q + "w3.weight");
  expert_row(x, d, f, at(w, q + "w1.weight"), at(w, q + "w2.weight"), w3.empty() ? nullptr : &w3, row);
}

Vec moe_mixer(const mt::ModelConfig& m, const Weights& w, const std::string& p, const Vec& xn, int64_t rows) {
  const auto& c = m.moe;
  const int64_t D = m.dim, X = c.experts, K = c.top_k;
  const Vec logits = linear(xn, rows, D, at(w, p + "moe.gate.weight"), X);
  const bool by_logits = c.router == magellano::nn::MoERouter::topk_softmax;
  const Vec scores = by_logits ? logits : softmax(logits, X);
  const auto mode = by_logits ? magellano::ops::TopKWeights::softmax
                    : c.normalize_top_k ? magellano::ops::TopKWeights::renorm
                                        : magellano::ops::TopKWeights::raw;
  const Vec weights = topk_weights(scores, rows, X, K, mode);
  Vec out(rows * D, 0.0);
  ExpertRow row;
  for (int64_t n = 0; n < rows; ++n) {
    const std::vector<int> sel = topk(&scores[n * X], X, K);
    for (int64_t k = 0; k < K; ++k) {
      mlp_row(w, p + "moe.experts." + std::to_string(sel[k]) + ".", &xn[n * D], D, c.hidden, row);
      for (int64_t j = 0; j < D; ++j) out[n * D + j] += weights[n * K + k] * row.y[j];
    }
    if (c.shared_expert_hidden) {
      mlp_row(w, p + "moe.shared_expert.", &xn[n * D], D, c.shared_expert_hidden, row);
      for (int64_t j = 0; j < D; ++j) out[n * D + j] += row.y[j];
    }
  }
  return out;
}

Vec mlp_mixer(const mt::ModelConfig& m, const Weights& w, const std::string& p, const Vec& xn, int64_t rows) {
  const int64_t D = m.dim, F = m.mlp_config().hidden;
  Vec out(rows * D);
  ExpertRow row;
  for (int64_t n = 0; n < rows; ++n) {
    mlp_row(w, p + "mlp.", &xn[n * D], D, F, row);
    std::copy(row.y.begin(), row.y.end(), out.begin() + n * D);
  }
  return out;
}

}  // namespace

Weights random_weights(const magellano::nn::Model& model, uint64_t seed) {
  Weights out;
  for (const auto& prm : model.parameters()) {
    const std::string& n = prm.name;
    const auto dims = prm.tensor.shape().dims();
    const size_t count = static_cast<size_t>(prm.tensor.numel());
    const uint64_t s = seed + 7919 * out.size();
    Vec v;
    if (ends_with(n, "norm.weight") || ends_with(n, "layernorm.weight") || ends_with(n, ".D")) {
      v = uniform(count, s, 0.7, 1.3);
    } else if (ends_with(n, "A_log")) {  // Mamba (E, N): log(1..N); Mamba2 (H): log(1..H)
      v = randn(count, s, 0.05);
      const int64_t period = dims.size() == 2 ? dims[1] : dims[0];
      for (size_t i = 0; i < count; ++i) v[i] += std::log(double(i % period + 1));
    } else if (ends_with(n, "dt_bias") || ends_with(n, "dt_proj.bias")) {
      v = randn(count, s, 0.3);
      for (auto& x : v) x -= 2.0;  // softplus(-2) ~ 0.13
    } else if (ends_with(n, "embeddings.weight")) {
      v = randn(count, s, 0.5);
    } else if (ends_with(n, ".bias")) {
      v = randn(count, s, 0.1);
    } else {  // matrices (out, in) and the conv (C, 1, K)
      const double in = double(dims.back()), bound = (ends_with(n, "moe.gate.weight") ? 3.0 : 1.0) / std::sqrt(in);
      v = uniform(count, s, -bound, bound);
    }
    out[n] = v;
  }
  return out;
}

void upload(const magellano::nn::Model& model, const Weights& w) {
  for (const auto& prm : model.parameters()) {
    const Vec& v = at(w, prm.name);
    std::vector<float> f(v.begin(), v.end());
    Tensor t = prm.tensor;
    if (t.dtype() == magellano::DType::f32) {
      t.copy_from_host(f.data(), f.size() * 4);
    } else {
      const Tensor full = Tensor::from_host(t.ctx(), t.shape(), f);
      magellano::ops::copy_into(magellano::ops::cast(full, t.dtype()), t);
    }
  }
}

Vec hybrid_logits(const mt::ModelConfig& m, const Weights& w, const std::vector<int32_t>& ids, int64_t b,
                  int64_t l, const std::vector<int64_t>& prefix) {
  const int64_t M = b * l, D = m.dim, V = m.vocab_size;
  const Vec& emb = at(w, "backbone.embeddings.weight");
  Vec h(M * D);
  for (int64_t t = 0; t < M; ++t)
    for (int64_t j = 0; j < D; ++j) h[t * D + j] = emb[ids[t] * D + j] * m.embedding_multiplier;
  const std::string layers = mt::layer_string(m.pattern);
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string p = "backbone.layers." + std::to_string(i) + ".";
    const Vec xn = rmsnorm(h, M, D, at(w, p + "norm.weight"), m.norm_eps);
    Vec f;
    switch (layers[i]) {
      case 'M':
      case 'S': {
        // Mamba2's reference block norms its own input (the norm is per position, so reversing
        // h or xn is the same).
        const bool s2 = layers[i] == 'S';
        const Vec& in = s2 ? h : xn;
        auto mixer = [&](const Vec& x, int64_t rb, int64_t rl) {
          return s2 ? mamba2_mixer(m, w, p, x, rb, rl) : mamba_mixer(m, w, p + "mixer.", x, rb, rl);
        };
        f = mixer(in, b, l);
        if (m.bidirectional_prefix && !prefix.empty()) {
          // Each row's prefix reversed, alone (a sequence of P positions), through the same
          // mixer; its outputs added back in forward order.
          for (int64_t r = 0; r < b; ++r) {
            const int64_t P = std::clamp<int64_t>(prefix[r], 0, l);
            if (P == 0) continue;
            Vec rev(P * D);
            for (int64_t t = 0; t < P; ++t)
              std::copy_n(&in[(r * l + P - 1 - t) * D], D, &rev[t * D]);
            const Vec y = mixer(rev, 1, P);
            for (int64_t t = 0; t < P; ++t)
              for (int64_t j = 0; j < D; ++j) f[(r * l + t) * D + j] += y[(P - 1 - t) * D + j];
          }
        }
        break;
      }
      case 'A': f = attention_mixer(m, w, p + "mixer.", xn, b, l, prefix); break;
      case 'E': f = moe_mixer(m, w, p, xn, M); break;
      default: f = mlp_mixer(m, w, p, xn, M); break;
    }
    for (size_t k = 0; k < h.size(); ++k) h[k] += m.residual_multiplier * f[k];
  }
  const Vec hn = rmsnorm(h, M, D, at(w, "backbone.norm_f.weight"), m.norm_eps);
  Vec logits = linear(hn, M, D, m.tie_embeddings ? emb : at(w, "lm_head.weight"), V);
  for (auto& x : logits) x /= m.logits_scaling;
  return logits;
}

double hybrid_loss(const mt::ModelConfig& m, const Weights& w, const std::vector<int32_t>& ids, int64_t b,
                   int64_t l) {
  const int64_t V = m.vocab_size;
  const Vec logits = hybrid_logits(m, w, ids, b, l);
  double sum = 0;
  for (int64_t r = 0; r < b; ++r)
    for (int64_t t = 0; t + 1 < l; ++t) {
      const double* row = &logits[(r * l + t) * V];
      sum += logsumexp(row, V) - row[ids[r * l + t + 1]];
    }
  return sum / double(b * (l - 1));
}

std::vector<int32_t> hybrid_greedy(const mt::ModelConfig& m, const Weights& w, std::vector<int32_t> prompt,
                                   int steps, double* margin) {
  const int64_t V = m.vocab_size;
  std::vector<int32_t> out;
  double gap = INFINITY;
  for (int s = 0; s < steps; ++s) {
    const int64_t l = static_cast<int64_t>(prompt.size());
    const Vec logits = hybrid_logits(m, w, prompt, 1, l);
    const double* row = &logits[(l - 1) * V];
    const std::vector<int> top = topk(row, V, 2);
    gap = std::min(gap, row[top[0]] - row[top[1]]);
    out.push_back(top[0]);
    prompt.push_back(top[0]);
  }
  if (margin) *margin = gap;
  return out;
}

}  // namespace mgtest::ref
