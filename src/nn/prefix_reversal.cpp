#include "magellano/nn/prefix_reversal.hpp"

#include <algorithm>
#include <vector>

#include "magellano/ops/index.hpp"
#include "magellano/ops/elementwise.hpp"

namespace magellano::nn {

PrefixReversal PrefixReversal::make(const Tensor& prefix, int64_t B, int64_t L) {
  const std::vector<int32_t> p = prefix.to_host_i32();
  std::vector<int32_t> into(B * L), back(B * L);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t P = std::clamp<int64_t>(p[b], 0, L);
    for (int64_t t = 0; t < L; ++t) {
      const auto i = static_cast<int32_t>(b * L + (t < P ? P - 1 - t : t));
      into[b * L + t] = i;
      back[b * L + t] = t < P ? i : -1;
    }
  }
  Context& ctx = prefix.ctx();
  return {Tensor::from_host_i32(ctx, Shape{B * L}, into), Tensor::from_host_i32(ctx, Shape{B * L}, back)};
}

Tensor PrefixReversal::branch(const Tensor& xn, const std::function<Tensor(const Tensor&)>& mixer) const {
  const int64_t B = xn.size(0), L = xn.size(1), D = xn.size(2);
  const Tensor xr = ops::gather_rows(ops::reshape(xn, Shape{B * L, D}), into);
  const Tensor yr = mixer(ops::reshape(xr, Shape{B, L, D}));
  return ops::reshape(ops::gather_rows(ops::reshape(yr, Shape{B * L, D}), back), Shape{B, L, D});
}

}  // namespace magellano::nn
