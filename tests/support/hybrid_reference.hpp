// Float64 reference of a whole Magellano language model of any layer pattern (M Mamba, S Mamba2,
// A attention, E MoE, F dense MLP), forward only, composed from the op references
// (reference.hpp) and the Mamba2 block reference (mamba2_reference.hpp). Weights are keyed by
// the model's own parameter names (nn::Model::parameters()), row-major, so one set feeds the
// device model, this reference and the Hugging Face folder writers (hf_hybrid_folder.hpp).
//
//   h = embedding[ids] · embedding_multiplier
//   h += residual_multiplier · f_i(rmsnorm_i(h))     for each block i
//   logits = rmsnorm_f(h) · (lm_head or embedding)ᵀ / logits_scaling
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "magellano/nn/model.hpp"
#include "magellano/train/config.hpp"
#include "reference.hpp"

namespace mgtest::ref {

using Weights = std::map<std::string, Vec>;

// Weights for every parameter of `model` (names and shapes from it), drawn by kind: norm weights
// near 1, A_log near log(1..), dt biases around softplus⁻¹(0.13), matrices U(±1/sqrt(in)) (the
// MoE router larger, so routing margins are wide), the embedding N(0, 0.5²).
Weights random_weights(const magellano::nn::Model& model, uint64_t seed);
// Uploads `w` into the model's parameters (f32 or f16 storage).
void upload(const magellano::nn::Model& model, const Weights& w);

// Logits (B, L, V) of ids (B, L) for the model that `m` describes. prefix: (B) prefix lengths
// (prefix-LM: the attention blocks' ref::attention with AttentionDims::prefix, and with
// m.bidirectional_prefix each Mamba and Mamba2 block's prefix also run reversed on its own, P
// positions, and added), empty = causal.
Vec hybrid_logits(const magellano::train::ModelConfig& m, const Weights& w, const std::vector<int32_t>& ids,
                  int64_t b, int64_t l, const std::vector<int64_t>& prefix = {});
// Mean cross-entropy of predicting ids[t + 1] from positions t < L - 1, per row.
double hybrid_loss(const magellano::train::ModelConfig& m, const Weights& w, const std::vector<int32_t>& ids,
                   int64_t b, int64_t l);
// Greedy continuation of one prompt by `steps` tokens (full forward each step); `margin`
// receives the smallest gap between the top two logits over the steps.
std::vector<int32_t> hybrid_greedy(const magellano::train::ModelConfig& m, const Weights& w,
                                   std::vector<int32_t> prompt, int steps, double* margin);

}  // namespace mgtest::ref
