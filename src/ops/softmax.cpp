#include "magellano/ops/softmax.hpp"

#include "check.hpp"
#include "magellano/ops/launch.hpp"
#include "magellano/ops/mapping.hpp"

namespace magellano::ops {

Tensor softmax(const Tensor& x) {
  detail::require_f32(x, "softmax", "x");
  if (x.shape().ndim() < 1 || x.shape().last() < 1)
    throw Error("softmax: x must have a non-empty last dimension, got " + x.shape().str() + ".");
  Context& ctx = x.ctx();
  const int64_t cols = x.shape().last(), rows = x.shape().rows();
  // cpu: a work-item per row; gpu: a work-group of `local` per row (cl/softmax.cl).
  const bool cpu = kernel_mapping(ctx) == KernelMapping::cpu;
  const int64_t local = cpu ? kCpuGroupSize : pow2_local_size(ctx);
  const int64_t global = cpu ? rows : rows * local;
  const BuildOptions opt = BuildOptions().define("LOCAL", pow2_local_size(ctx));
  Tensor y = Tensor::empty(ctx, x.shape());
  Launch(ctx, "softmax", cpu ? "softmax_fwd_row" : "softmax_fwd", opt).arg(x).arg(y).arg(rows)
      .arg(cols).run(global, local);
  if (autograd::any_requires_grad({x})) {
    // The backward needs only the output; a view of it, so the closure holds no autograd
    // state of y itself.
    Tensor saved_y = y.view(y.shape());
    autograd::record(y, [mx = autograd::grad_meta(x), saved_y, rows, cols, cpu, global, local,
                         opt](const Tensor& dy) {
      auto g = autograd::grad_target(mx);
      Launch(dy.ctx(), "softmax", cpu ? "softmax_bwd_row" : "softmax_bwd", opt).arg(saved_y)
          .arg(dy).arg(g.tensor).arg(rows).arg(cols).arg(g.accumulate).run(global, local);
    });
  }
  return y;
}

}  // namespace magellano::ops
