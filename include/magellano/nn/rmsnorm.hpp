// RMSNorm layer (ops::rms_norm with a trainable weight).
#pragma once
#include "magellano/nn/module.hpp"

namespace magellano::nn {

// y = x · rsqrt(mean(x²) + eps) · weight over the last dimension; weight: (D), init 1.
class RMSNorm : public Module {
 public:
  RMSNorm(Context& ctx, int64_t dim, float eps = 1e-5f);
  Tensor forward(const Tensor& x) const;
  void collect(const std::string& prefix, std::vector<Parameter>& out) const override;
  Tensor weight;
  float eps;
};

}  // namespace magellano::nn
