// RMSNorm over the last dimension, with autograd.
//
// rms_norm(x, weight, eps) = x * rsqrt(mean(x^2 over the last dimension) + eps) * weight
//   x:      (..., D) f32, row-major, up to 4-D; every row of D values is normalised on its own
//   weight: (D) f32, multiplied into every row
//   out:    (..., D) f32, x's shape
// Backward gives dx (..., D) and dweight (D). dweight sums over rows in a fixed order
// (chunks of rows, then the chunks in order): deterministic, no atomics.
#pragma once
#include "magellano/autograd/tape.hpp"

namespace magellano::ops {

Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps = 1e-5f);

}  // namespace magellano::ops
