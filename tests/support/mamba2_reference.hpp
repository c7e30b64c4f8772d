// Float64 reference of a Mamba2 residual block (Hugging Face Mamba2ForCausalLM / mamba_ssm
// Mamba2 semantics, include/magellano/nn/mamba2.hpp), composed from the op references
// (reference.hpp: rmsnorm, linear, cols, conv, silu, ssd_scan, gated_rms_norm), forward and
// backward. Row-major vectors; x and the output are (B, L, D).
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "reference.hpp"

namespace mgtest::ref {

struct Mamba2Dims {
  int64_t b, l, d, di, p, g, n, k;  // batch, length, D, inner Di, head_dim P, groups G, state N, conv K
  bool bias = false, conv_bias = true;
  double lo = 0.0, hi = INFINITY;  // time_step_limit
  double eps = 1e-5;               // both norms
  int64_t h() const { return di / p; }
  int64_t c() const { return di + 2 * g * n; }       // conv channels
  int64_t in_out() const { return di + c() + h(); }  // in_proj outputs
};

// One block's parameters, laid out as the Hugging Face file stores them; absent biases are empty.
struct Mamba2Weights {
  Vec norm;        // (D)        backbone.layers.i.norm.weight
  Vec in_w, in_b;  // (Di+C+H, D), (Di+C+H)  mixer.in_proj.*
  Vec conv_w;      // (C, 1, K)  mixer.conv1d.weight
  Vec conv_b;      // (C)        mixer.conv1d.bias
  Vec dt_bias, A_log, D;  // (H)
  Vec gated_norm;  // (Di)       mixer.norm.weight
  Vec out_w, out_b;  // (D, Di), (D)  mixer.out_proj.*
  // Every field in the order above, with its name under "backbone.layers.<i>." and shape;
  // absent biases are skipped.
  struct Field {
    std::string name;
    std::vector<int64_t> shape;
    Vec* values;
  };
  std::vector<Field> fields(const Mamba2Dims& s);
};

// Weights drawn for tests: in the ranges a trained Mamba2 has (softplus(dt_bias) around 0.1,
// A_log near log(1..H), norm weights near 1).
Mamba2Weights random_mamba2_weights(const Mamba2Dims& s, uint64_t seed);

// x + mixer(rmsnorm(x)): (B, L, D).
Vec mamba2_block(const Mamba2Dims& s, const Mamba2Weights& w, const Vec& x);
// The gradients of sum(out * dout): returns dx; dw receives every weight's gradient (the same
// layout; empty where the weight is absent).
Vec mamba2_block_bwd(const Mamba2Dims& s, const Mamba2Weights& w, const Vec& x, const Vec& dout, Mamba2Weights& dw);

// A Mamba2ForCausalLM of `layers` blocks: embedding (V, D), blocks, norm_f (D), and the LM head
// (V, D), which is the embedding when tied. dims.b and dims.l are unused (given per call).
struct Mamba2Model {
  Mamba2Dims dims;
  int64_t vocab = 0;
  bool tie = false;
  Vec embedding, norm_f, lm_head;
  std::vector<Mamba2Weights> blocks;
};
Mamba2Model random_mamba2_model(const Mamba2Dims& dims, int64_t vocab, int64_t layers, bool tie, uint64_t seed);
// Logits (B, L, V) of ids (B, L).
Vec mamba2_model_logits(const Mamba2Model& m, const std::vector<int32_t>& ids, int64_t b, int64_t l);

}  // namespace mgtest::ref
