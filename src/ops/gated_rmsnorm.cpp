#include "magellano/ops/gated_rmsnorm.hpp"

#include <cmath>

#include "check.hpp"
#include "magellano/ops/launch.hpp"
#include "magellano/ops/mapping.hpp"
#include "magellano/ops/reduce.hpp"

namespace magellano::ops {
namespace {

constexpr int64_t kRowChunk = 64;  // rows per partial column sum of dweight

void check_args(const Tensor& y, const Tensor& z, const Tensor& w, int64_t groups, float eps) {
  detail::require_f32(y, "gated_rms_norm", "y");
  detail::require_f32(z, "gated_rms_norm", "z");
  detail::require_f32(w, "gated_rms_norm", "weight");
  if (y.shape().ndim() < 1 || y.numel() < 1)
    throw Error("gated_rms_norm: y must not be empty, got " + y.shape().str() + ".");
  if (z.shape() != y.shape())
    throw Error("gated_rms_norm: the gate z must have y's shape " + y.shape().str() + ", got " +
                z.shape().str() + ".");
  const int64_t d = y.shape().last();
  if (w.shape() != Shape{d})
    throw Error("gated_rms_norm: weight must have shape (" + std::to_string(d) + ") to match y " +
                y.shape().str() + ", got " + w.shape().str() + ".");
  if (groups < 1 || d % groups)
    throw Error("gated_rms_norm: " + std::to_string(groups) + " groups must divide the " + std::to_string(d) +
                " channels.");
  if (!(eps >= 0.0f) || !std::isfinite(eps))
    throw Error("gated_rms_norm: eps must be finite and >= 0, got " + std::to_string(eps) + ".");
}

}  // namespace

Tensor gated_rms_norm(const Tensor& y, const Tensor& z, const Tensor& weight, int64_t groups, float eps) {
  check_args(y, z, weight, groups, eps);
  Context& ctx = y.ctx();
  const int64_t d = y.shape().last(), rows = y.shape().rows(), gs = d / groups;
  const int64_t local = pow2_local_size(ctx);
  const BuildOptions opt = BuildOptions().define("LOCAL", local);
  // cpu: a work-item per (row, group); gpu: a work-group of `local` per (row, group).
  const bool cpu = kernel_mapping(ctx) == KernelMapping::cpu;
  const int64_t rows_groups = rows * groups;
  const int64_t global = cpu ? rows_groups : rows_groups * local, group = cpu ? kCpuGroupSize : local;
  Tensor out = Tensor::empty(ctx, y.shape());
  Tensor rstd = Tensor::empty(ctx, Shape{rows, groups});
  Launch fwd(ctx, "gated_rmsnorm", cpu ? "gated_rms_norm_fwd_row" : "gated_rms_norm_fwd", opt);
  fwd.arg(y).arg(z).arg(weight).arg(out).arg(rstd).arg(groups).arg(gs);
  if (cpu) fwd.arg(rows_groups);
  fwd.arg(eps).run(global, group);
  if (autograd::any_requires_grad({y, z, weight})) {
    auto my = autograd::grad_meta(y), mz = autograd::grad_meta(z), mw = autograd::grad_meta(weight);
    autograd::record(out, [=](const Tensor& dout) {
      Context& c = dout.ctx();
      if (my || mz) {
        auto scratch = [&] { return Tensor::empty(c, y.shape(), DType::f32, MemCategory::scratch); };
        const autograd::GradTarget gy = my ? autograd::grad_target(my) : autograd::GradTarget{scratch(), false};
        const autograd::GradTarget gz = mz ? autograd::grad_target(mz) : autograd::GradTarget{scratch(), false};
        Launch bwd(c, "gated_rmsnorm", cpu ? "gated_rms_norm_bwd_row" : "gated_rms_norm_bwd", opt);
        bwd.arg(y).arg(z).arg(weight).arg(rstd).arg(dout).arg(gy.tensor).arg(gz.tensor).arg(groups).arg(gs);
        if (cpu) bwd.arg(rows_groups);
        bwd.arg(int32_t(gy.accumulate)).arg(int32_t(gz.accumulate)).run(global, group);
      }
      if (mw) {
        auto g = autograd::grad_target(mw);
        const int64_t chunks = (rows + kRowChunk - 1) / kRowChunk;
        Tensor partial = Tensor::empty(c, Shape{chunks, d}, DType::f32, MemCategory::scratch);
        const BuildOptions dw_opt = BuildOptions(opt).define("VEC", mapping_vec(c));
        Launch(c, "gated_rmsnorm", "gated_rms_norm_dw_partial", dw_opt).arg(y).arg(z).arg(rstd).arg(dout)
            .arg(partial).arg(rows).arg(d).arg(gs).arg(kRowChunk).run2d(vec_items(c, d), chunks, 64, 1);
        colsum_final(partial, g.tensor, 1.0f, g.accumulate);
      }
    });
  }
  return out;
}

}  // namespace magellano::ops
