// The reverse branch of model.bidirectional_prefix, shared by the Mamba ('M') and Mamba2 ('S')
// blocks: over each row's prefix a block also runs its mixer on the prefix reversed, with the
// same parameters (all shared, weight-tied as Caduceus's BiMamba), and adds the result turned back
// to the forward direction: y[t] = fwd[t] + rev[P−1−t] for t < P, fwd[t] for t ≥ P. Suffix
// positions, the decode state and generation stay causal.
#pragma once
#include <cstdint>
#include <functional>

#include "magellano/tensor/tensor.hpp"

namespace magellano::nn {

// The gathers, built once per forward from the prefix lengths and shared by every Mamba and Mamba2
// block. Row b's position t < P_b reads P_b - 1 - t (an involution, so the same index turns the
// reverse scan's outputs back); a suffix position reads itself into the reverse scan (never
// reaching a prefix output: the scan is causal) and -1 (a zero row, no gradient) on the way back.
struct PrefixReversal {
  Tensor into;  // (B·L) i32: the row each reversed position reads
  Tensor back;  // (B·L) i32: the reversed output each position takes, -1 for the suffix
  bool defined() const { return into.defined(); }
  // prefix: (B) i32 lengths (clamped to [0, L]); one read-back to the host.
  static PrefixReversal make(const Tensor& prefix, int64_t B, int64_t L);
  // The reverse branch for a block's normed input xn (B, L, D): mixer (a causal (B, L, D) →
  // (B, L, D) map, run without a decode state) over the reversed prefixes, turned back, zero at
  // suffix positions. Differentiable (ops::reshape and gather_rows, no views).
  Tensor branch(const Tensor& xn, const std::function<Tensor(const Tensor&)>& mixer) const;
};

}  // namespace magellano::nn
