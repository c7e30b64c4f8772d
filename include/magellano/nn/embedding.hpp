// Token embedding layer (ops::embedding over a trainable table).
#pragma once
#include "magellano/nn/module.hpp"

namespace magellano::nn {

// Token embedding: weight (V, D), init N(0, 0.02) as mamba_ssm; forward(ids (...) i32) -> (..., D).
// The weight is f32, or f16 after store_half() (trainable fp16 storage; rows widened on read).
class Embedding : public Module {
 public:
  Embedding(Context& ctx, int64_t vocab, int64_t dim, Init& init, double std = 0.02);
  Tensor forward(const Tensor& ids) const;
  void store_half();
  void collect(const std::string& prefix, std::vector<Parameter>& out) const override;
  Tensor weight;
};

}  // namespace magellano::nn
