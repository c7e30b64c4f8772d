#include "magellano/ops/decode_gemv.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "check.hpp"
#include "magellano/ops/launch.hpp"
#include "magellano/ops/mapping.hpp"

namespace magellano::ops {
namespace {

// The gpu mapping's work-group: `items` work-items per output (a power of two) and `outputs` per
// work-group; MAGELLANO_DECODE_GEMV=ITEMSxOUTPUTS (e.g. 32x8) overrides the default 64x1.
struct GpuShape {
  int64_t items = 64, outputs = 1;
};

GpuShape gpu_shape(const DeviceInfo& dev) {
  GpuShape g;
  const char* env = std::getenv("MAGELLANO_DECODE_GEMV");
  if (!env || !*env) return g;
  long long items = 0, outputs = 0;
  char tail = 0;
  if (std::sscanf(env, "%lldx%lld%c", &items, &outputs, &tail) != 2 || items < 1 || items > 256 ||
      (items & (items - 1)) || outputs < 1 || items * outputs > static_cast<long long>(dev.max_work_group_size))
    throw Error("MAGELLANO_DECODE_GEMV must be ITEMSxOUTPUTS: work-items per output (a power of two up to 256) "
                "and outputs per work-group, at most " + std::to_string(dev.max_work_group_size) +
                " work-items in all (e.g. 32x8), got '" + env + "'.");
  g.items = items, g.outputs = outputs;
  return g;
}

// One launch; with conv (Mamba's in_proj) the conv step of the first half of the outputs too.
DecodeGemvConvOut gemv(const Tensor& x, const Tensor& weight, const DecodeGemvParts& p, const DecodeConv* conv) {
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
  // gpu: gpu_shape's items per output, outputs per work-group; the tree by warp shuffles on NVIDIA
  // where an output's items and the group fill whole warps. cpu: a work-item per output, in groups
  // of 64 for large O, else of 8 so that small products still spread over the cores.
  const GpuShape g = cpu ? GpuShape{} : gpu_shape(ctx.device());
  const bool shfl = ctx.device().nv_compute_capability >= 30 && g.items <= 32 && g.items * g.outputs % 32 == 0;
  BuildOptions opt = BuildOptions().define("NB", B);
  if (!cpu) opt.define("LWG", g.items).define("OPG", g.outputs).define("SHFL", shfl);
  const int64_t groups = (O + g.outputs - 1) / g.outputs;
  Launch(ctx, "decode_gemv", cpu ? "decode_gemv_cpu" : "decode_gemv", opt)
      .arg(x).arg(weight).arg(p.norm.defined() ? p.norm : x).arg(p.bias.defined() ? p.bias : x)
      .arg(p.residual.defined() ? p.residual : x).arg(out)
      .arg(conv ? conv->weight : x).arg(conv_mode == 2 ? conv->bias : x).arg(conv ? conv->state : out)
      .arg(conv ? xc : out).arg(K).arg(O).arg(p.eps).arg(p.scale)
      .arg(p.norm.defined()).arg(p.bias.defined()).arg(p.residual.defined()).arg(conv_mode).arg(W)
      .run(cpu ? O : groups * g.items * g.outputs, cpu ? (O >= 4096 ? 64 : 8) : g.items * g.outputs);
  return {out, xc};
}

}  // namespace

Tensor decode_gemv(const Tensor& x, const Tensor& weight, const DecodeGemvParts& p) {
  return gemv(x, weight, p, nullptr).out;
}

DecodeGemvConvOut decode_gemv_conv(const Tensor& x, const Tensor& weight, const DecodeGemvParts& p,
                                   const DecodeConv& conv) {
  return gemv(x, weight, p, &conv);
}

}  // namespace magellano::ops
