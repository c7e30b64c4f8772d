// Linear (PyTorch layout), RMSNorm and Embedding layers.
#pragma once
#include "magellano/nn/module.hpp"

namespace magellano::nn {

// y = x · Wᵀ (+ b).  weight: (out, in) as PyTorch stores it; bias: (out) or none.
// Default init as torch.nn.Linear: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
class Linear : public Module {
 public:
  Linear(Context& ctx, int64_t in, int64_t out, bool bias, Init& init);
  Tensor forward(const Tensor& x) const;  // x: (..., in) -> (..., out)
  void collect(const std::string& prefix, std::vector<Parameter>& out) const override;
  Tensor weight, bias;
};

// y = x · rsqrt(mean(x²) + eps) · weight over the last dimension; weight: (D), init 1.
class RMSNorm : public Module {
 public:
  RMSNorm(Context& ctx, int64_t dim, float eps = 1e-5f);
  Tensor forward(const Tensor& x) const;
  void collect(const std::string& prefix, std::vector<Parameter>& out) const override;
  Tensor weight;
  float eps;
};

// Token embedding: weight (V, D), init N(0, 0.02) as mamba_ssm; forward(ids (...) i32) -> (..., D).
class Embedding : public Module {
 public:
  Embedding(Context& ctx, int64_t vocab, int64_t dim, Init& init, double std = 0.02);
  Tensor forward(const Tensor& ids) const;
  void collect(const std::string& prefix, std::vector<Parameter>& out) const override;
  Tensor weight;
};

}  // namespace magellano::nn
