#include "magellano/nn/rmsnorm.hpp"

#include "magellano/ops/rmsnorm.hpp"

namespace magellano::nn {

RMSNorm::RMSNorm(Context& ctx, int64_t dim, float eps_) : eps(eps_) {
  weight = make_parameter(ctx, Shape{dim}, std::vector<float>(dim, 1.0f));
}

Tensor RMSNorm::forward(const Tensor& x) const { return ops::rms_norm(x, weight, eps); }

void RMSNorm::collect(const std::string& prefix, std::vector<Parameter>& out) const {
  out.push_back({prefix + "weight", weight, false});
}

}  // namespace magellano::nn
