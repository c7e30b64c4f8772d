// Linear layers over frozen weights stored in half precision (storage only; arithmetic fp32).
//
// half_linear(x, w) = x · float(w)ᵀ     x: (..., in) f32, w: (out, in) f16 -> (..., out) f32
// The forward widens w into a temporary fp32 scratch (one f16_to_f32 launch, vload_half) and
// calls CLBlast; the backward widens it again and gives dx = dy · float(w) only: the weight is
// frozen and gets no gradient, and nothing but x's handle is kept for the backward (not even
// that: dx needs only dy and w).
#pragma once
#include "magellano/autograd/tape.hpp"

namespace magellano::ops {

Tensor half_linear(const Tensor& x, const Tensor& w);

}  // namespace magellano::ops
