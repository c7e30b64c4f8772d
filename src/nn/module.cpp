#include "magellano/nn/module.hpp"

#include "magellano/autograd/tape.hpp"
#include "magellano/ops/elementwise.hpp"

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

Tensor half_parameter(const Tensor& w) {
  if (w.dtype() == DType::f16) return w;
  autograd::NoGradScope no_grad;
  Tensor w16 = ops::cast(w, DType::f16);
  w16.storage()->set_category(MemCategory::parameters);
  if (w.requires_grad()) w16.set_requires_grad(true);
  return w16;
}

}  // namespace magellano::nn
