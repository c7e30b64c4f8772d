#include "small_model.hpp"

#include <random>

#include "harness.hpp"

namespace mgtest {

magellano::nn::ModelSpec small_model_spec(const std::string& layers) {
  magellano::nn::ModelSpec s;
  s.vocab_size = 61, s.dim = 16, s.layers = layers;
  s.mamba.d_state = 4;
  s.mamba2.head_dim = 8, s.mamba2.n_groups = 2, s.mamba2.d_state = 4;  // Di 32: 4 heads in 2 groups
  s.moe.hidden = 24, s.moe.experts = 4, s.moe.top_k = 2;
  return s;
}

std::vector<int32_t> small_model_ids(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> v(n);
  for (auto& x : v) x = static_cast<int32_t>(rng() % 61);
  return v;
}

void randomize_adapters(magellano::nn::Model& m, uint64_t seed, double scale) {
  for (auto p : m.lora_parameters())
    if (p.name.find("lora_B") != std::string::npos)
      p.tensor.copy_from_host(to_f32(randn(p.tensor.numel(), seed++, scale)).data(), p.tensor.nbytes());
}

}  // namespace mgtest
