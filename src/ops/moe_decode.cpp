#include "magellano/ops/moe_decode.hpp"

#include <cmath>

#include "check.hpp"
#include "magellano/ops/launch.hpp"
#include "magellano/ops/mapping.hpp"

namespace magellano::ops {
namespace {

constexpr int64_t kMaxExperts = 64;

// gpu: a work-group of 64 per row; cpu: a work-item per row, 64 to a work-group.
struct Groups {
  int64_t lwg;
  size_t global(int64_t rows) const { return size_t(lwg == 1 ? rows : rows * lwg); }
  size_t local() const { return size_t(lwg == 1 ? 64 : lwg); }
};

Groups groups(const Context& ctx) { return {kernel_mapping(ctx) == KernelMapping::cpu ? 1 : 64}; }

BuildOptions options(const Context& ctx, int64_t experts, int64_t top_k) {
  return BuildOptions().define("LWG", groups(ctx).lwg).define("NX", experts).define("TOPK", top_k);
}

}  // namespace

DecodeRouting moe_decode_route(const Tensor& x, const Tensor& norm, float eps, const Tensor& gate, int64_t top_k,
                               DecodeRouter router) {
  for (const Tensor* t : {&x, &norm, &gate}) detail::require_f32(*t, "moe_decode", "x, norm and gate");
  if (!(x.shape().ndim() == 2 && x.size(0) >= 1 && gate.shape().ndim() == 2 && gate.size(1) == x.size(1) &&
              norm.shape() == Shape{x.size(1)}))
    throw Error("moe_decode: " + std::string("x must be (T, D), norm (D) and gate (X, D), got x " + x.shape().str() + ", norm " + norm.shape().str() +
              " and gate " + gate.shape().str() + "."));
  const int64_t T = x.size(0), D = x.size(1), X = gate.size(0);
  if (!(X >= 1 && X <= kMaxExperts && top_k >= 1 && top_k <= X))
    throw Error("moe_decode: " + std::string("takes 1 to " + std::to_string(kMaxExperts) + " experts and 1 <= top_k <= experts, got " + std::to_string(X) +
              " experts and top_k " + std::to_string(top_k) + "."));
  if (!(eps >= 0.0f && std::isfinite(eps)))
    throw Error("moe_decode: " + std::string("eps must be finite and >= 0."));
  detail::require_int_sizes({T * D, X * D}, "moe_decode", "moe_decode_route");
  Context& ctx = x.ctx();
  DecodeRouting r{Tensor::empty(ctx, Shape{T, D}), Tensor::empty(ctx, Shape{T, top_k}, DType::i32),
                  Tensor::empty(ctx, Shape{T, top_k})};
  const Groups g = groups(ctx);
  Launch(ctx, "moe_decode", "moe_decode_route", options(ctx, X, top_k))
      .arg(x).arg(norm).arg(gate).arg(r.xn).arg(r.idx).arg(r.weights).arg(T).arg(D).arg(eps)
      .arg(static_cast<int32_t>(router))
      .run(g.global(T), g.local());
  return r;
}

Tensor moe_decode_experts(const Tensor& x, const DecodeRouting& r, const MoEDecodeWeights& w, float scale,
                          const Tensor& extra) {
  if (!(x.shape().ndim() == 2 && r.xn.shape() == x.shape() && r.idx.shape().ndim() == 2 &&
              r.idx.size(0) == x.size(0) && r.weights.shape() == r.idx.shape() && r.idx.dtype() == DType::i32))
    throw Error("moe_decode: " + std::string("the routing must be moe_decode_route's for x " + x.shape().str() + "."));
  const int64_t T = x.size(0), D = x.size(1), X = w.gate.size(0), top_k = r.idx.size(1);
  for (const Tensor* t : {&w.w1, &w.w2}) detail::require_f32(*t, "moe_decode", "w1 and w2");
  if (!(w.w1.shape().ndim() == 3 && w.w1.size(0) == X && w.w1.size(2) == D))
    throw Error("moe_decode: " + std::string("w1 must be (X, F, D) = (" + std::to_string(X) + ", F, " + std::to_string(D) + "), got " +
              w.w1.shape().str() + "."));
  const int64_t F = w.w1.size(1);
  if (!(w.w2.shape() == Shape{X, D, F}))
    throw Error("moe_decode: " + std::string("w2 must be " + Shape{X, D, F}.str() + ", got " + w.w2.shape().str() + "."));
  if (!(!w.w3.defined() || (w.w3.shape() == w.w1.shape() && w.w3.dtype() == DType::f32)))
    throw Error("moe_decode: " + std::string("w3 must be w1's shape " + w.w1.shape().str() + ", got " + w.w3.shape().str() + "."));
  if (!(!extra.defined() || (extra.shape() == x.shape() && extra.dtype() == DType::f32)))
    throw Error("moe_decode: " + std::string("extra must be x's shape " + x.shape().str() + "."));
  if (!(std::isfinite(scale)))
    throw Error("moe_decode: " + std::string("scale must be finite."));
  detail::require_int_sizes({X * F * D, T * top_k * F}, "moe_decode", "moe_decode_up");
  Context& ctx = x.ctx();
  const Groups g = groups(ctx);
  BuildOptions opt = options(ctx, X, top_k);
  if (w.w3.defined()) opt.define("SWIGLU");
  Tensor act = Tensor::empty(ctx, Shape{T, top_k, F});
  Launch(ctx, "moe_decode", "moe_decode_up", opt)
      .arg(r.xn).arg(r.idx).arg(w.w1).arg(w.w3.defined() ? w.w3 : w.w1).arg(act).arg(T).arg(D).arg(F)
      .run(g.global(T * top_k * F), g.local());
  Tensor out = Tensor::empty(ctx, Shape{T, D});
  Launch(ctx, "moe_decode", "moe_decode_down", opt)
      .arg(act).arg(r.idx).arg(r.weights).arg(w.w2).arg(x).arg(extra.defined() ? extra : x).arg(out).arg(T).arg(D)
      .arg(F).arg(scale).arg(extra.defined())
      .run(g.global(T * D), g.local());
  return out;
}

}  // namespace magellano::ops
