// Linear products over weights stored in half precision (storage only; arithmetic fp32).
//
// half_linear(x, w) = x · float(w)ᵀ     x: (..., in) f32, w: (out, in) f16 -> (..., out) f32
// The forward widens w into a temporary fp32 scratch (one f16_to_f32 launch, exact) and runs
// the GEMM; the scratch is released before the op returns, so the fp32 copy of one weight
// exists at a time. Backward:
//   dw = dyᵀ · x, when w requires a gradient (a trainable fp16 parameter): computed in fp32
//        into a scratch, then added into w's fp16 gradient (ops::accumulate_grad: one
//        rounding to nearest fp16 of the fp32 sum); done first, so its scratch is gone
//        before the next one is made
//   dx = dy · float(w), when x requires one: w widened again.
// Saved for the backward: w's handle (no copy), and x only when w needs a gradient.
// ops::linear calls this for an f16 weight, so layers need not choose.
#pragma once
#include "magellano/autograd/tape.hpp"

namespace magellano::ops {

Tensor half_linear(const Tensor& x, const Tensor& w);

}  // namespace magellano::ops
