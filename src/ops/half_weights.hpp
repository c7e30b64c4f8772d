// Helpers for ops whose weights may be stored as fp16 (private to src/ops). Storage only: every
// product runs in fp32 on a widened copy, and weight gradients are computed in fp32.
#pragma once
#include <functional>
#include <memory>

#include "magellano/tensor/tensor.hpp"

namespace magellano::ops::detail {

// w as f32: w itself when it is f32, else a fresh scratch copy of an f16 w (exact widening).
// The copy lives as long as the returned handle: take it right before the product and drop
// it right after, so one weight's fp32 copy exists at a time.
Tensor widen(const Tensor& w);

// Adds a weight's gradient computed by `product(dst, beta)`, which must write
// dst = product + beta * dst (a GEMM's beta). An f32 gradient is written in place (beta 1
// when it holds a value, else 0); an f16 gradient (an fp16 parameter's) gets the product in
// an f32 scratch of the weight's shape, added with ops::accumulate_grad (fp32 sum, rounded
// once to fp16). m == nullptr: nothing to do.
void add_weight_grad(const std::shared_ptr<AutogradMeta>& m,
                     const std::function<void(const Tensor& dst, float beta)>& product);

}  // namespace magellano::ops::detail
