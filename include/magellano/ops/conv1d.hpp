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

namespace magellano::ops {

// Step-by-step decoding (no autograd). state: (B, C, W-1), the last W-1 inputs of each channel,
// oldest first, updated in place. x_t: (B, C); weight (C, W); bias (C) or undefined.
// Returns y_t: (B, C), equal to causal_conv1d's output at that position.
Tensor causal_conv1d_step(const Tensor& x_t, const Tensor& weight, const Tensor& bias,
                          const Tensor& state);

// The conv state a parallel forward over x: (B, L, C) leaves for a conv of width W:
// (B, C, W-1), zeros where L < W-1.
Tensor causal_conv1d_state(const Tensor& x, int64_t width);

}  // namespace magellano::ops
