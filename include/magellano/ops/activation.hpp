// Pointwise activations with autograd. Any shape; f32.
#pragma once
#include "magellano/autograd/tape.hpp"

namespace magellano::ops {

Tensor silu(const Tensor& x);      // x * sigmoid(x)
Tensor softplus(const Tensor& x);  // log(1 + exp(x)), overflow-safe
Tensor exp(const Tensor& x);
Tensor gelu(const Tensor& x);      // x * Phi(x), exact erf form (PyTorch nn.GELU() default)

}  // namespace magellano::ops
