#include "magellano/ops/conv1d.hpp"

#include <algorithm>
#include <string>

#include "check.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/launch.hpp"
#include "magellano/ops/mapping.hpp"
#include "magellano/ops/reduce.hpp"

namespace magellano::ops {
using detail::require_f32;

namespace {

constexpr int64_t kRowChunk = 64;  // rows (b, t) per partial sum of dweight
constexpr int64_t kFastWidth = 4;  // the width with a specialised (unrolled) build

BuildOptions width_option(int64_t w) {
  return BuildOptions().define("WIDTH", w == kFastWidth ? kFastWidth : 0);
}

struct ConvDims {
  int64_t rows, len, ch, width;
};

// The cpu mapping (cl/conv1d.cl's *_vec kernels) needs the width baked in: W = kFastWidth.
bool cpu_kernels(const Context& ctx, const ConvDims& s) {
  return kernel_mapping(ctx) == KernelMapping::cpu && s.width == kFastWidth;
}

// Global size (x, y) of the *_vec kernels: 16 channels by kRowChunk rows per work-item.
std::pair<int64_t, int64_t> vec_range(const ConvDims& s) {
  return {(s.ch + 15) / 16, (s.rows + kRowChunk - 1) / kRowChunk};
}

void conv_backward(const ConvDims& s, const Tensor& x, const Tensor& w,
                   const std::shared_ptr<AutogradMeta>& mx, const std::shared_ptr<AutogradMeta>& mw,
                   const std::shared_ptr<AutogradMeta>& mb, const Tensor& dy) {
  Context& ctx = dy.ctx();
  const BuildOptions opt = width_option(s.width);
  const bool cpu = cpu_kernels(ctx, s);
  const auto [gx, gy] = vec_range(s);
  if (mx) {
    auto g = autograd::grad_target(mx);
    if (cpu)
      Launch(ctx, "conv1d", "conv1d_bwd_dx_vec", opt).arg(dy).arg(w).arg(g.tensor).arg(s.rows)
          .arg(s.len).arg(s.ch).arg(kRowChunk).arg(g.accumulate).run2d(gx, gy, 1, 1);
    else
      Launch(ctx, "conv1d", "conv1d_bwd_dx", opt).arg(dy).arg(w).arg(g.tensor).arg(s.rows)
          .arg(s.len).arg(s.ch).arg(s.width).arg(g.accumulate).run(s.rows * s.ch);
  }
  if (mw) {
    auto g = autograd::grad_target(mw);
    const int64_t chunks = std::max<int64_t>(1, (s.rows + kRowChunk - 1) / kRowChunk);
    const int64_t cols = s.ch * s.width;
    if (s.rows == 0) {
      if (!g.accumulate) fill(g.tensor, 0.0f);
    } else {
      Tensor partial = Tensor::empty(ctx, Shape{chunks, cols}, DType::f32, MemCategory::scratch);
      if (cpu)
        Launch(ctx, "conv1d", "conv1d_bwd_dw_partial_vec", opt).arg(x).arg(dy).arg(partial)
            .arg(s.rows).arg(s.len).arg(s.ch).arg(kRowChunk).run2d(gx, gy, 1, 1);
      else
        Launch(ctx, "conv1d", "conv1d_bwd_dw_partial", opt).arg(x).arg(dy).arg(partial)
            .arg(s.rows).arg(s.len).arg(s.ch).arg(s.width).arg(kRowChunk)
            .run2d(cols, chunks, 64, 1);
      colsum_final(partial, g.tensor, 1.0f, g.accumulate);
    }
  }
  if (mb) {
    auto g = autograd::grad_target(mb);
    colsum_into(dy, s.ch, g.tensor, 1.0f, g.accumulate);
  }
}

}  // namespace

Tensor causal_conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  require_f32(x, "causal_conv1d", "x");
  require_f32(weight, "causal_conv1d", "weight");
  const Shape& xs = x.shape();
  if (xs.ndim() != 2 && xs.ndim() != 3)
    throw Error("causal_conv1d: x must be (B, L, C) or (L, C), got " + xs.str() + ".");
  const int64_t ch = xs.last(), len = xs[-2];
  if (weight.shape().ndim() != 2 || weight.shape()[0] != ch || weight.shape()[1] < 1)
    throw Error("causal_conv1d: weight must be (C, W) = (" + std::to_string(ch) +
                ", W >= 1) for x " + xs.str() + ", got " + weight.shape().str() + ".");
  const int64_t width = weight.shape()[1];
  Tensor b = bias;
  if (b.defined()) {
    require_f32(b, "causal_conv1d", "bias");
    if (b.numel() != ch || b.shape().ndim() != 1)
      throw Error("causal_conv1d: bias must be (C) = (" + std::to_string(ch) + "), got " +
                  b.shape().str() + ".");
  } else {
    b = Tensor::zeros(x.ctx(), Shape{ch}, DType::f32, MemCategory::scratch);
  }
  const ConvDims s{xs.rows(), len, ch, width};
  Tensor y = Tensor::empty(x.ctx(), xs);
  if (cpu_kernels(x.ctx(), s)) {
    const auto [gx, gy] = vec_range(s);
    Launch(x.ctx(), "conv1d", "conv1d_fwd_vec", width_option(width)).arg(x).arg(weight).arg(b)
        .arg(y).arg(s.rows).arg(s.len).arg(s.ch).arg(kRowChunk).run2d(gx, gy, 1, 1);
  } else {
    Launch(x.ctx(), "conv1d", "conv1d_fwd", width_option(width)).arg(x).arg(weight).arg(b).arg(y)
        .arg(s.rows).arg(s.len).arg(s.ch).arg(width).run(s.rows * s.ch);
  }
  if (autograd::any_requires_grad({x, weight, bias})) {
    auto mx = autograd::grad_meta(x), mw = autograd::grad_meta(weight);
    auto mb = autograd::grad_meta(bias);
    // dx needs the weight, dweight needs x: keep only what a needed gradient uses.
    Tensor saved_x = mw ? x : Tensor(), saved_w = mx ? weight : Tensor();
    autograd::record(y, [s, saved_x, saved_w, mx, mw, mb](const Tensor& dy) {
      conv_backward(s, saved_x, saved_w, mx, mw, mb, dy);
    });
  }
  return y;
}

}  // namespace magellano::ops
