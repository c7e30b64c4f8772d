// Softmax over the last dimension, with autograd.
//
// softmax(x) = exp(x - max) / sum(exp(x - max)) along the last dimension
//   x:   (..., C) f32, row-major, up to 4-D; each row of C values is normalised on its own
//   out: (..., C) f32, x's shape; each row sums to 1
// Numerically stable for any finite logits (the row maximum is subtracted). Backward:
// dx = y * (dy - sum_c(dy * y)), with the row sums taken in a fixed order.
#pragma once
#include "magellano/autograd/tape.hpp"

namespace magellano::ops {

Tensor softmax(const Tensor& x);

}  // namespace magellano::ops
