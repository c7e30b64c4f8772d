// Causal depthwise 1-D convolution with bias, channels last (Mamba's short convolution).
#pragma once
#include "magellano/autograd/tape.hpp"

namespace magellano::ops {

// y[b, t, c] = bias[c] + sum_{k < W} weight[c, k] * x[b, t - (W - 1) + k, c], with x = 0 before
// t = 0. This is PyTorch's Conv1d(C, C, W, groups=C, padding=W-1)(x.transpose(1, 2)) truncated
// to the first L outputs, with its weight [C, 1, W] flattened to (C, W).
//   x: (B, L, C) f32 row-major (or (L, C): one sequence); weight: (C, W) f32; bias: (C) f32
//   (undefined for none); returns x's shape. W = 4 runs an unrolled kernel; any W >= 1 works.
// Backward: dx (a W-tap correlation), dweight (deterministic two-stage sum over B * L per
// (c, k)), dbias (colsum over B * L).
Tensor causal_conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

}  // namespace magellano::ops
