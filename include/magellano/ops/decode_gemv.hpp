// Matrix-vector products for decoding a few rows at once, no autograd: one launch reads the weight
// once and fuses the RMSNorm before it and the bias and residual add after it (cl/decode_gemv.cl).
//
//   x: (B, K) f32, 1 <= B <= kDecodeGemvRows     weight: (O, K) f32 (PyTorch's Linear layout)
//   returns out: (B, O) = [residual +] scale · (rms_norm(x, norm) · weightᵀ [+ bias])
//   norm: (K) RMSNorm weight (undefined: x as it is), eps its epsilon; bias: (O) or undefined;
//   residual: (B, O) or undefined.
// Equal to ops::rms_norm, ops::linear and ops::add composed, to fp32 rounding (the norm's
// rsqrt multiplies the finished dot product instead of each input).
// Each function also takes an int4 weight (ops/int4.hpp) in groups of a multiple of 32 (real
// files use 32, 64 and 128; decode_gemv_takes_int4_group): the product reads the packed words and
// scales, W' = round_f16(code · scale) exactly as ops::int4_linear, so an int4 model decodes on the
// fused path with 0.52 bytes read a weight instead of 4.
#pragma once
#include "magellano/tensor/tensor.hpp"

namespace magellano::ops {

struct Int4Weight;

// The most rows one launch takes (one accumulator per row in registers).
constexpr int64_t kDecodeGemvRows = 16;

struct DecodeGemvParts {
  Tensor norm;           // (K) or undefined
  float eps = 1e-5f;
  Tensor bias;           // (O) or undefined
  Tensor residual;       // (B, O) or undefined
  float scale = 1.0f;    // multiplies the product (and bias) before the residual is added
};

Tensor decode_gemv(const Tensor& x, const Tensor& weight, const DecodeGemvParts& parts = {});
Tensor decode_gemv(const Tensor& x, const Int4Weight& weight, const DecodeGemvParts& parts = {});
// Whether an int4 weight with this group size can be read by the decode kernels (a multiple of 32).
inline bool decode_gemv_takes_int4_group(int64_t group_size) { return group_size > 0 && group_size % 32 == 0; }

// Mamba's in_proj with the causal conv step of its x half fused in (one launch):
//   out = decode_gemv(x, weight, parts): (B, 2E), x' = out[:, :E];
//   xc = silu(conv_bias + Σ_{k<W-1} conv_weight[e, k] · state[b, e, k] + conv_weight[e, W-1] · x'[b, e]): (B, E),
//   equal to ops::silu(ops::causal_conv1d_step(x', conv_weight, conv_bias, state));
//   state: (B, E, W-1) the last W-1 inputs, oldest first, shifted left and taking x' (in place).
// conv_weight (E, W) f32, conv_bias (E) f32 or undefined.
struct DecodeConv {
  Tensor weight, bias, state;
};
struct DecodeGemvConvOut {
  Tensor out, xc;
};
DecodeGemvConvOut decode_gemv_conv(const Tensor& x, const Tensor& weight, const DecodeGemvParts& parts,
                                   const DecodeConv& conv);
DecodeGemvConvOut decode_gemv_conv(const Tensor& x, const Int4Weight& weight, const DecodeGemvParts& parts,
                                   const DecodeConv& conv);

}  // namespace magellano::ops
