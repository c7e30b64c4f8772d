#include "magellano/ops/rmsnorm.hpp"

#include <algorithm>
#include <cmath>

#include "check.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/launch.hpp"
#include "magellano/ops/mapping.hpp"
#include "magellano/ops/reduce.hpp"

namespace magellano::ops {
namespace {

constexpr int64_t kRowChunk = 64;  // rows per partial column sum of dweight

void check_args(const Tensor& x, const Tensor& w, float eps) {
  detail::require_f32(x, "rms_norm", "x");
  detail::require_f32(w, "rms_norm", "weight");
  if (x.shape().ndim() < 1 || x.shape().last() < 1)
    throw Error("rms_norm: x must have a non-empty last dimension, got " + x.shape().str() + ".");
  if (w.shape().ndim() != 1 || w.shape()[0] != x.shape().last())
    throw Error("rms_norm: weight must have shape (" + std::to_string(x.shape().last()) +
                ") to match x " + x.shape().str() + ", got " + w.shape().str() + ".");
  if (!(eps >= 0.0f) || !std::isfinite(eps))
    throw Error("rms_norm: eps must be finite and >= 0, got " + std::to_string(eps) + ".");
}

}  // namespace

Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps) {
  check_args(x, weight, eps);
  Context& ctx = x.ctx();
  const int64_t d = x.shape().last(), rows = x.shape().rows();
  // cpu: a work-item per row; gpu: a work-group of `local` per row (cl/rmsnorm.cl).
  const bool cpu = kernel_mapping(ctx) == KernelMapping::cpu;
  const int64_t local = pow2_local_size(ctx);
  const int64_t row_global = cpu ? rows : rows * local, row_local = cpu ? kCpuGroupSize : local;
  const BuildOptions opt = BuildOptions().define("LOCAL", local);
  Tensor y = Tensor::empty(ctx, x.shape());
  Tensor rstd = Tensor::empty(ctx, Shape{std::max<int64_t>(rows, 1)});
  Launch(ctx, "rmsnorm", cpu ? "rms_norm_fwd_row" : "rms_norm_fwd", opt).arg(x).arg(weight).arg(y)
      .arg(rstd).arg(rows).arg(d).arg(eps).run(row_global, row_local);
  if (autograd::any_requires_grad({x, weight})) {
    auto mx = autograd::grad_meta(x), mw = autograd::grad_meta(weight);
    // Both gradients need x and rstd; dx also needs weight.
    Tensor saved_w = mx ? weight : Tensor();
    autograd::record(y, [mx, mw, x, saved_w, rstd, rows, d, cpu, row_global, row_local,
                         opt](const Tensor& dy) {
      Context& c = dy.ctx();
      if (mx) {
        auto g = autograd::grad_target(mx);
        Launch(c, "rmsnorm", cpu ? "rms_norm_bwd_dx_row" : "rms_norm_bwd_dx", opt).arg(x)
            .arg(saved_w).arg(rstd).arg(dy).arg(g.tensor).arg(rows).arg(d).arg(g.accumulate)
            .run(row_global, row_local);
      }
      if (mw) {
        auto g = autograd::grad_target(mw);
        const int64_t chunks = std::max<int64_t>(1, (rows + kRowChunk - 1) / kRowChunk);
        if (rows == 0) {  // no rows: dweight is an empty sum
          if (!g.accumulate) fill(g.tensor, 0.0f);
          return;
        }
        Tensor partial = Tensor::empty(c, Shape{chunks, d}, DType::f32, MemCategory::scratch);
        const BuildOptions dw_opt = BuildOptions(opt).define("VEC", mapping_vec(c));
        Launch(c, "rmsnorm", "rms_norm_bwd_dw_partial", dw_opt).arg(x).arg(rstd).arg(dy)
            .arg(partial).arg(rows).arg(d).arg(kRowChunk).run2d(vec_items(c, d), chunks, 64, 1);
        colsum_final(partial, g.tensor, 1.0f, g.accumulate);
      }
    });
  }
  return y;
}

}  // namespace magellano::ops
