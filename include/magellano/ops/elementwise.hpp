// Elementwise ops with autograd. Broadcast: b may have a's shape, or be a row vector of a's
// last dimension (shape (D) or (1, D)), added / multiplied to every row.
#pragma once
#include "magellano/autograd/tape.hpp"

namespace magellano::ops {

Tensor add(const Tensor& a, const Tensor& b, float alpha = 1.0f);  // a + alpha * b
Tensor mul(const Tensor& a, const Tensor& b);                      // a * b
Tensor scale(const Tensor& x, float s);                            // s * x
Tensor reshape(const Tensor& x, const Shape& shape);               // a view; grads flow back
Tensor cast(const Tensor& x, DType to);  // f32 <-> f16 storage (differentiable for f32 -> f16 -> f32)
Tensor clone(const Tensor& x);           // a contiguous copy (no autograd)

// In-place helpers for backward code and optimizers (no autograd).
void fill(const Tensor& t, float value);
void copy_into(const Tensor& src, const Tensor& dst);  // same numel, same dtype
void cast_into(const Tensor& src, const Tensor& dst);  // same numel, f32 <-> f16 (nearest even)
// Tests: elements per work-item of the fp16 kernels (cl/half.cl), so a CPU-only CI also runs
// the GPUs' mapping; 0 = by device (8 on CPUs, 1 elsewhere).
void force_half_vec(int vec);
// dst (+)= s * x  (acc picks add or overwrite); shapes must have equal numel.
void scale_into(const Tensor& x, float s, const Tensor& dst, bool acc);
// Writes s * x (f32) into an input's gradient (the usual last step of a backward). An f16
// gradient (fp16 parameter storage) gets the fp32 sum rounded to nearest fp16.
void accumulate_grad(const std::shared_ptr<AutogradMeta>& m, const Tensor& x, float s = 1.0f);

}  // namespace magellano::ops
