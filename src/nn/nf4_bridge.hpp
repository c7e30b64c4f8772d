// The NF4 operations nn::Linear needs, in one place (private to src/nn).
//   nf4_quantize(w)    w: (out, in) f32 device tensor -> its NF4 form (blocks of 64, double quant)
//   nf4_dense(w)       -> (out, in) f32, the dequantized weight
//   nf4_project(x, w)  x: (..., in) f32 -> x · dequant(W)ᵀ (..., out), differentiable in x only
//   nf4_context(w)     the context its buffers live in
#pragma once
#include "magellano/tensor/tensor.hpp"

#if __has_include("magellano/quant/nf4.hpp")
#include "magellano/ops/nf4_linear.hpp"
#include "magellano/quant/nf4.hpp"

namespace magellano::nn {
inline quant::NF4Weight nf4_quantize(const Tensor& w) { return quant::quantize_nf4(w); }
inline Tensor nf4_dense(const quant::NF4Weight& w) { return quant::dequantize_nf4(w); }
inline Tensor nf4_project(const Tensor& x, const quant::NF4Weight& w) { return ops::nf4_linear(x, w); }
inline Context& nf4_context(const quant::NF4Weight& w) { return w.ctx(); }
}  // namespace magellano::nn
#else
#include "magellano/runtime/error.hpp"
namespace magellano::quant {
struct NF4Weight {};
}  // namespace magellano::quant
namespace magellano::nn {
[[noreturn]] inline void nf4_missing() {
  throw Error("NF4 weights are not available in this build (the quant/nf4 module is missing); "
              "use lora.base_precision \"fp32\" or \"fp16\".");
}
inline quant::NF4Weight nf4_quantize(const Tensor&) { nf4_missing(); }
inline Tensor nf4_dense(const quant::NF4Weight&) { nf4_missing(); }
inline Tensor nf4_project(const Tensor&, const quant::NF4Weight&) { nf4_missing(); }
inline Context& nf4_context(const quant::NF4Weight&) { nf4_missing(); }
}  // namespace magellano::nn
#endif
