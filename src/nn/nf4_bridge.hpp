// The NF4 operations nn::Linear needs, in one place (private to src/nn).
//   nf4_quantize(w)    w: (out, in) f32 device tensor -> its NF4 form (blocks of 64, double quant)
//   nf4_dense(w)       -> (out, in) f32, the dequantized weight
//   nf4_project(x, w)  x: (..., in) f32 -> x · dequant(W)ᵀ (..., out), differentiable in x only
//   nf4_context(w)     the context its buffers live in
#pragma once
#include "magellano/ops/nf4.hpp"
#include "magellano/ops/nf4_linear.hpp"

namespace magellano::nn {
inline ops::NF4Weight nf4_quantize(const Tensor& w) { return ops::quantize_nf4(w); }
inline Tensor nf4_dense(const ops::NF4Weight& w) { return ops::dequantize_nf4(w); }
inline Tensor nf4_project(const Tensor& x, const ops::NF4Weight& w) { return ops::nf4_linear(x, w); }
inline Context& nf4_context(const ops::NF4Weight& w) { return w.ctx(); }
}  // namespace magellano::nn
