#include "magellano/ops/decode_gemv.hpp"

#include <cmath>

#include "check.hpp"
#include "magellano/ops/launch.hpp"
#include "magellano/ops/mapping.hpp"

namespace magellano::ops {

Tensor decode_gemv(const Tensor& x, const Tensor& weight, const DecodeGemvParts& p) {
  detail::require_f32(x, "decode_gemv", "x");
  detail::require_f32(weight, "decode_gemv", "weight");
  if (x.shape().ndim() != 2 || weight.shape().ndim() != 2 || x.size(1) != weight.size(1))
    throw Error("decode_gemv: x must be (B, K) and weight (O, K), got x " + x.shape().str() + " and weight " +
                weight.shape().str() + ".");
  const int64_t B = x.size(0), K = x.size(1), O = weight.size(0);
  if (B < 1 || B > kDecodeGemvRows || K < 1 || O < 1)
    throw Error("decode_gemv: takes 1 to " + std::to_string(kDecodeGemvRows) + " rows and non-empty weights, got x " +
                x.shape().str() + " and weight " + weight.shape().str() + ".");
  if (p.norm.defined() && (p.norm.shape() != Shape{K} || p.norm.dtype() != DType::f32))
    throw Error("decode_gemv: the norm weight must be (" + std::to_string(K) + ") f32, got " + p.norm.shape().str() + ".");
  if (p.bias.defined() && (p.bias.shape() != Shape{O} || p.bias.dtype() != DType::f32))
    throw Error("decode_gemv: the bias must be (" + std::to_string(O) + ") f32, got " + p.bias.shape().str() + ".");
  if (p.residual.defined() && (p.residual.shape() != Shape{B, O} || p.residual.dtype() != DType::f32))
    throw Error("decode_gemv: the residual must be (" + std::to_string(B) + ", " + std::to_string(O) + ") f32, got " +
                p.residual.shape().str() + ".");
  if (!(p.eps >= 0.0f) || !std::isfinite(p.eps) || !std::isfinite(p.scale))
    throw Error("decode_gemv: eps and scale must be finite (eps >= 0).");
  detail::require_int_sizes({O * K, B * O}, "decode_gemv", "decode_gemv");
  Context& ctx = x.ctx();
  const bool cpu = kernel_mapping(ctx) == KernelMapping::cpu;
  Tensor out = Tensor::empty(ctx, Shape{B, O});
  // gpu: a work-group of 64 per output. cpu: a work-item per output, in groups of 64 for large O,
  // else of 8 so that small products still spread over the cores.
  const int64_t lwg = 64;
  BuildOptions opt = BuildOptions().define("NB", B);
  if (!cpu) opt.define("LWG", lwg);
  Launch(ctx, "decode_gemv", cpu ? "decode_gemv_cpu" : "decode_gemv", opt)
      .arg(x).arg(weight).arg(p.norm.defined() ? p.norm : x).arg(p.bias.defined() ? p.bias : x)
      .arg(p.residual.defined() ? p.residual : x).arg(out).arg(K).arg(O).arg(p.eps).arg(p.scale)
      .arg(p.norm.defined()).arg(p.bias.defined()).arg(p.residual.defined())
      .run(cpu ? O : O * lwg, cpu ? (O >= 4096 ? 64 : 8) : lwg);
  return out;
}

}  // namespace magellano::ops
