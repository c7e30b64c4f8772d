#include "magellano/nn/embedding.hpp"

#include "magellano/ops/index.hpp"

namespace magellano::nn {

Embedding::Embedding(Context& ctx, int64_t vocab, int64_t dim, Init& init, double std) {
  weight = make_parameter(ctx, Shape{vocab, dim}, init.normal(vocab * dim, std));
}

Tensor Embedding::forward(const Tensor& ids) const { return ops::embedding(weight, ids); }

void Embedding::store_half() { weight = half_parameter(weight); }

void Embedding::collect(const std::string& prefix, std::vector<Parameter>& out) const {
  out.push_back({prefix + "weight", weight, true});
}

}  // namespace magellano::nn
