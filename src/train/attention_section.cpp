// The model.attention section: its checks against model.dim and the nn::AttentionConfig it gives.
#include <algorithm>

#include "magellano/runtime/error.hpp"
#include "magellano/train/config.hpp"

namespace magellano::train {

void AttentionSection::check(int64_t dim) const {
  if (head_dim == 0 && dim % heads)
    throw Error("config: 'model.attention.heads' (" + std::to_string(heads) + ") must divide 'model.dim' (" +
                std::to_string(dim) + "); choose a divisor of it or set 'model.attention.head_dim'.");
  const int64_t kv = kv_heads ? kv_heads : heads;
  if (heads % kv)
    throw Error("config: 'model.attention.kv_heads' (" + std::to_string(kv) + ") must divide 'model.attention.heads' (" +
                std::to_string(heads) + "); choose a divisor of " + std::to_string(heads) + ".");
  nn::AttentionConfig c;
  c.dim = dim;
  c.heads = heads;
  c.kv_heads = kv_heads;
  c.head_dim = head_dim;
  c.rope_theta = rope_theta;
  c.scale = scale;
  try {
    c.validate();
  } catch (const Error& e) {
    throw Error(std::string("config: 'model.attention': ") + e.what());
  }
}

nn::AttentionConfig ModelConfig::attention_config() const {
  nn::AttentionConfig a;
  a.dim = dim;
  a.heads = attention.heads;
  a.kv_heads = attention.kv_heads;
  a.head_dim = attention.head_dim;
  a.rope_theta = attention.rope_theta;
  a.rope_2d = infill_positions == data::InfillPositions::glm2d;
  a.scale = attention.scale;
  a.norm_eps = static_cast<float>(norm_eps);
  a.num_layers = std::max<int64_t>(1, static_cast<int64_t>(pattern.size()));
  return a;
}

}  // namespace magellano::train
