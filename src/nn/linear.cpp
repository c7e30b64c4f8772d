#include "magellano/nn/linear.hpp"

#include <cmath>

#include "magellano/ops/index.hpp"
#include "magellano/ops/matmul.hpp"
#include "magellano/ops/rmsnorm.hpp"

namespace magellano::nn {

Linear::Linear(Context& ctx, int64_t in, int64_t out, bool has_bias, Init& init) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  weight = make_parameter(ctx, Shape{out, in}, init.uniform(out * in, -bound, bound));
  if (has_bias) bias = make_parameter(ctx, Shape{out}, init.uniform(out, -bound, bound));
}

Tensor Linear::forward(const Tensor& x) const { return ops::linear(x, weight, bias); }

void Linear::collect(const std::string& prefix, std::vector<Parameter>& out) const {
  out.push_back({prefix + "weight", weight, true});
  if (bias.defined()) out.push_back({prefix + "bias", bias, false});
}

RMSNorm::RMSNorm(Context& ctx, int64_t dim, float eps_) : eps(eps_) {
  weight = make_parameter(ctx, Shape{dim}, std::vector<float>(dim, 1.0f));
}

Tensor RMSNorm::forward(const Tensor& x) const { return ops::rms_norm(x, weight, eps); }

void RMSNorm::collect(const std::string& prefix, std::vector<Parameter>& out) const {
  out.push_back({prefix + "weight", weight, false});
}

Embedding::Embedding(Context& ctx, int64_t vocab, int64_t dim, Init& init, double std) {
  weight = make_parameter(ctx, Shape{vocab, dim}, init.normal(vocab * dim, std));
}

Tensor Embedding::forward(const Tensor& ids) const { return ops::embedding(weight, ids); }

void Embedding::collect(const std::string& prefix, std::vector<Parameter>& out) const {
  out.push_back({prefix + "weight", weight, true});
}

}  // namespace magellano::nn
