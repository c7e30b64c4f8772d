// Pointwise activations with autograd. Any shape; f32.
#pragma once
#include "magellano/autograd/tape.hpp"

namespace magellano::ops {

Tensor silu(const Tensor& x);      // x * sigmoid(x)
Tensor softplus(const Tensor& x);  // log(1 + exp(x)), overflow-safe
Tensor exp(const Tensor& x);

}  // namespace magellano::ops
