// Deterministic reductions with autograd (fixed order; no floating-point atomics).
#pragma once
#include "magellano/autograd/tape.hpp"

namespace magellano::ops {

Tensor sum(const Tensor& x);         // all elements -> shape (1)
Tensor mean(const Tensor& x);        // all elements -> shape (1)
Tensor sum_last(const Tensor& x);    // (..., C) -> (...): sum over the last dimension
Tensor mean_last(const Tensor& x);   // (..., C) -> (...)

// Building blocks (no autograd): out (+)= scale * column sums of x viewed as (rows, C).
void colsum_into(const Tensor& x, int64_t cols, const Tensor& out, float scale, bool acc);
// The second stage of a chunked column sum: out[c] (+)= scale * sum_k partial[k, c], k in
// order. partial: (K, C) f32; out: (C).
void colsum_final(const Tensor& partial, const Tensor& out, float scale, bool acc);

}  // namespace magellano::ops
