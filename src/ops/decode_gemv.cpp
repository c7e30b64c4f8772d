#include "magellano/ops/decode_gemv.hpp"

#include <algorithm>
#include <cmath>

#include "check.hpp"
#include "magellano/ops/int4.hpp"
#include "magellano/ops/launch.hpp"
#include "magellano/ops/mapping.hpp"

namespace magellano::ops {
namespace {

// The weight of a launch: f32 (O, K), or int4 (its packed words and scales; group size G).
struct Weight {
  Tensor values, scales;
  Shape shape;
  int64_t group = 0;  // int4 only
};

Weight f32_weight(const Tensor& w) {
  detail::require_f32(w, "decode_gemv", "weight");
  return {w, Tensor(), w.shape(), 0};
}

Weight int4_weight(const Int4Weight& w) {
  if (!w.defined() || w.shape.ndim() != 2)
    throw Error("decode_gemv: the int4 weight must be 2-D (out, in), got " +
                (w.defined() ? w.shape.str() : std::string("an undefined weight")) + ".");
  if (!decode_gemv_takes_int4_group(w.group_size))
    throw Error("decode_gemv: int4 weights in groups of a multiple of 32, got groups of " +
                std::to_string(w.group_size) + " (ops::int4_linear takes any group).");
  return {w.packed, w.scales, w.shape, w.group_size};
}

// One launch; with conv (Mamba's in_proj) the conv step of the first half of the outputs too.
DecodeGemvConvOut gemv(const Tensor& x, const Weight& weight, const DecodeGemvParts& p, const DecodeConv* conv) {
  detail::require_f32(x, "decode_gemv", "x");
  if (x.shape().ndim() != 2 || weight.shape.ndim() != 2 || x.size(1) != weight.shape[1])
    throw Error("decode_gemv: x must be (B, K) and weight (O, K), got x " + x.shape().str() + " and weight " +
                weight.shape.str() + ".");
  const int64_t B = x.size(0), K = x.size(1), O = weight.shape[0];
  if (B < 1 || B > kDecodeGemvRows || K < 1 || O < 1)
    throw Error("decode_gemv: takes 1 to " + std::to_string(kDecodeGemvRows) + " rows and non-empty weights, got x " +
                x.shape().str() + " and weight " + weight.shape.str() + ".");
  if (&x.ctx() != &weight.values.ctx()) throw Error("decode_gemv: x and the weight live in different contexts.");
  if (p.norm.defined() && (p.norm.shape() != Shape{K} || p.norm.dtype() != DType::f32))
    throw Error("decode_gemv: the norm weight must be (" + std::to_string(K) + ") f32, got " + p.norm.shape().str() + ".");
  if (p.bias.defined() && (p.bias.shape() != Shape{O} || p.bias.dtype() != DType::f32))
    throw Error("decode_gemv: the bias must be (" + std::to_string(O) + ") f32, got " + p.bias.shape().str() + ".");
  if (p.residual.defined() && (p.residual.shape() != Shape{B, O} || p.residual.dtype() != DType::f32))
    throw Error("decode_gemv: the residual must be (" + std::to_string(B) + ", " + std::to_string(O) + ") f32, got " +
                p.residual.shape().str() + ".");
  if (!(p.eps >= 0.0f) || !std::isfinite(p.eps) || !std::isfinite(p.scale))
    throw Error("decode_gemv: eps and scale must be finite (eps >= 0).");
  int64_t W = 1;
  Tensor xc;
  if (conv) {
    const char* op = "decode_gemv_conv";
    const Tensor &cw = conv->weight, &cb = conv->bias, &st = conv->state;
    if (!(cw.defined() && cw.dtype() == DType::f32 && cw.shape().ndim() == 2 && cw.size(0) * 2 == O && cw.size(1) >= 1))
      throw Error(std::string(op) + ": the conv weight must be (E, W) f32 with 2E = " + std::to_string(O) +
                  " outputs, got " + (cw.defined() ? cw.shape().str() : std::string("none")) + ".");
    W = cw.size(1);
    if (!st.defined() || st.shape() != Shape{B, O / 2, W - 1} || st.dtype() != DType::f32)
      throw Error(std::string(op) + ": the conv state must be " + Shape{B, O / 2, W - 1}.str() + " f32, got " +
                  (st.defined() ? st.shape().str() : std::string("none")) + ".");
    if (cb.defined() && (cb.shape() != Shape{O / 2} || cb.dtype() != DType::f32))
      throw Error(std::string(op) + ": the conv bias must be (" + std::to_string(O / 2) + ") f32, got " +
                  cb.shape().str() + ".");
    detail::require_int_sizes({B * O * W}, op, op);
    xc = Tensor::empty(x.ctx(), Shape{B, O / 2});
  }
  detail::require_int_sizes({O * K, B * O}, "decode_gemv", "decode_gemv");
  Context& ctx = x.ctx();
  const bool cpu = kernel_mapping(ctx) == KernelMapping::cpu;
  Tensor out = Tensor::empty(ctx, Shape{B, O});
  const int conv_mode = conv ? (conv->bias.defined() ? 2 : 1) : 0;
  // gpu: a work-group of 64 per output. cpu: a work-item per output, in groups of 64 for large O,
  // else of 8 so that small products still spread over the cores; int4 (which stages x in local
  // memory once per group): about two groups per core, 8 to 256 work-items each, and x in tiles of
  // kt columns (a multiple of G) that take at most half the device's local memory.
  const int64_t lwg = 64;
  int64_t cpu_group = O >= 4096 ? 64 : 8, kt = 1;
  if (cpu && weight.group) {
    const int64_t share = O / std::max<int64_t>(1, 2 * ctx.device().compute_units);
    cpu_group = 8;
    while (cpu_group < 256 && cpu_group * 2 <= share) cpu_group *= 2;
    const int64_t fit = static_cast<int64_t>(ctx.device().local_mem_bytes / 2) / (4 * B) / weight.group * weight.group;
    kt = std::min(K, std::max(weight.group, fit));
  }
  BuildOptions opt = BuildOptions().define("NB", B);
  if (!cpu) opt.define("LWG", lwg);
  if (weight.group) opt.define("W_INT4", weight.group);
  Launch(ctx, "decode_gemv", cpu ? "decode_gemv_cpu" : "decode_gemv", opt)
      .arg(x).arg(weight.values).arg(weight.group ? weight.scales : x).arg(p.norm.defined() ? p.norm : x)
      .arg(p.bias.defined() ? p.bias : x).arg(p.residual.defined() ? p.residual : x).arg(out)
      .arg(conv ? conv->weight : x).arg(conv_mode == 2 ? conv->bias : x).arg(conv ? conv->state : out)
      .arg(conv ? xc : out).arg(K).arg(O).arg(p.eps).arg(p.scale)
      .arg(p.norm.defined()).arg(p.bias.defined()).arg(p.residual.defined()).arg(conv_mode).arg(W)
      .local_floats(static_cast<size_t>(B * kt)).arg(kt)
      .run(cpu ? O : O * lwg, cpu ? cpu_group : lwg);
  return {out, xc};
}

}  // namespace

Tensor decode_gemv(const Tensor& x, const Tensor& weight, const DecodeGemvParts& p) {
  return gemv(x, f32_weight(weight), p, nullptr).out;
}

Tensor decode_gemv(const Tensor& x, const Int4Weight& weight, const DecodeGemvParts& p) {
  return gemv(x, int4_weight(weight), p, nullptr).out;
}

DecodeGemvConvOut decode_gemv_conv(const Tensor& x, const Tensor& weight, const DecodeGemvParts& p,
                                   const DecodeConv& conv) {
  return gemv(x, f32_weight(weight), p, &conv);
}

DecodeGemvConvOut decode_gemv_conv(const Tensor& x, const Int4Weight& weight, const DecodeGemvParts& p,
                                   const DecodeConv& conv) {
  return gemv(x, int4_weight(weight), p, &conv);
}

}  // namespace magellano::ops
