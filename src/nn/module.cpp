#include "magellano/nn/module.hpp"

namespace magellano::nn {

std::vector<float> Init::normal(int64_t n, double std) {
  std::normal_distribution<double> d(0.0, std);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(d(rng_));
  return v;
}

std::vector<float> Init::uniform(int64_t n, double lo, double hi) {
  std::uniform_real_distribution<double> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(d(rng_));
  return v;
}

Tensor make_parameter(Context& ctx, const Shape& shape, const std::vector<float>& values) {
  Tensor t = Tensor::from_host(ctx, shape, values, DType::f32, MemCategory::parameters);
  t.set_requires_grad(true);
  return t;
}

}  // namespace magellano::nn
