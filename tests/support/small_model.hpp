// A small hybrid model for model-level tests (LoRA, checkpointing, adapters, merging):
// vocabulary 61, width 16, d_state 4, Mamba2 blocks of 4 heads of 8 in 2 groups with state 4,
// MoE with 4 experts (top 2, hidden 24).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "magellano/nn/model.hpp"

namespace mgtest {

// The spec with the given layer pattern, e.g. "MEM" (Mamba, MoE, Mamba), "SES" (Mamba2, MoE, Mamba2).
magellano::nn::ModelSpec small_model_spec(const std::string& layers);
// n token ids in [0, 61) from `seed`.
std::vector<int32_t> small_model_ids(int64_t n, uint64_t seed);
// Every LoRA B := random (a fresh adapter's B is 0, which would hide every mistake).
void randomize_adapters(magellano::nn::Model& m, uint64_t seed, double scale = 0.3);

}  // namespace mgtest
