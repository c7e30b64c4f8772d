#include "magellano/ops/reduce.hpp"

#include <algorithm>

#include "check.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/launch.hpp"
#include "magellano/ops/mapping.hpp"

namespace magellano::ops {
using detail::require_f32;

namespace {

constexpr int64_t kLocal = 256;     // LOCAL in cl/reduce.cl
constexpr int64_t kMaxGroups = 256; // partial sums of a full reduction
constexpr int64_t kColChunk = 64;   // rows per partial column sum

// out[0] (+)= scale * sum(x), deterministic for a given n and device.
void sum_into(const Tensor& x, const Tensor& out, float scale, bool acc) {
  Context& ctx = x.ctx();
  const int64_t n = x.numel();
  const int64_t groups = std::clamp<int64_t>((n + kLocal - 1) / kLocal, 1, kMaxGroups);
  Tensor partial = Tensor::empty(ctx, Shape{groups}, DType::f32, MemCategory::scratch);
  Launch(ctx, "reduce", "sum_partial").arg(x).arg(partial).arg(n).run(groups * kLocal, kLocal);
  Launch(ctx, "reduce", "sum_final").arg(partial).arg(out).arg(groups).arg(scale).arg(acc)
      .run(kLocal, kLocal);
}

// cpu: a work-item per row; gpu: a work-group of kLocal per row (cl/reduce.cl).
void sum_last_into(const Tensor& x, const Tensor& out, float scale, bool acc) {
  const int64_t cols = x.shape().last(), rows = x.shape().rows();
  const bool cpu = kernel_mapping(x.ctx()) == KernelMapping::cpu;
  Launch(x.ctx(), "reduce", cpu ? "sum_last_row" : "sum_last").arg(x).arg(out).arg(rows)
      .arg(cols).arg(scale).arg(acc).run(cpu ? rows : rows * kLocal, cpu ? kCpuGroupSize : kLocal);
}

// g (+)= s * v[r] spread over the `cols` columns of row r; g: (n) = (n / cols, cols).
void spread_rows(const Tensor& v, const Tensor& g, int64_t n, int64_t cols, float s, bool acc) {
  if (kernel_mapping(v.ctx()) == KernelMapping::cpu)
    Launch(v.ctx(), "elementwise", "spread_rows_vec").arg(v).arg(g).arg(n).arg(cols).arg(s)
        .arg(acc).run2d((cols + 15) / 16, n / std::max<int64_t>(cols, 1), 1, 1);
  else
    Launch(v.ctx(), "elementwise", "spread_rows").arg(v).arg(g).arg(n).arg(cols).arg(s).arg(acc)
        .run(n);
}

Shape drop_last(const Shape& s) {
  if (s.ndim() <= 1) return Shape{1};
  std::vector<int64_t> d = s.dims();
  d.pop_back();
  return Shape(d);
}

Tensor sum_all(const Tensor& x, float s, const char* name) {
  require_f32(x, name, "x");
  Tensor out = Tensor::empty(x.ctx(), Shape{1});
  sum_into(x, out, s, false);
  if (autograd::any_requires_grad({x}))
    autograd::record(out, [mx = autograd::grad_meta(x), s](const Tensor& dy) {
      // dx = s * dy[0] everywhere: one "row" of n columns.
      auto g = autograd::grad_target(mx);
      const int64_t n = mx->shape.numel();
      spread_rows(dy, g.tensor, n, n, s, g.accumulate);
    });
  return out;
}

Tensor sum_last_op(const Tensor& x, float s, const char* name) {
  require_f32(x, name, "x");
  Tensor out = Tensor::empty(x.ctx(), drop_last(x.shape()));
  sum_last_into(x, out, s, false);
  if (autograd::any_requires_grad({x}))
    autograd::record(out, [mx = autograd::grad_meta(x), s](const Tensor& dy) {
      // dx[r, c] = s * dy[r]
      auto g = autograd::grad_target(mx);
      spread_rows(dy, g.tensor, mx->shape.numel(), mx->shape.last(), s, g.accumulate);
    });
  return out;
}

}  // namespace

void colsum_into(const Tensor& x, int64_t cols, const Tensor& out, float scale, bool acc) {
  Context& ctx = x.ctx();
  const int64_t rows = x.numel() / cols;
  const int64_t chunks = std::max<int64_t>(1, (rows + kColChunk - 1) / kColChunk);
  if (rows == 0) {
    if (!acc) fill(out, 0.0f);
    return;
  }
  Tensor partial = Tensor::empty(ctx, Shape{chunks, cols}, DType::f32, MemCategory::scratch);
  Launch(ctx, "reduce", "colsum_partial", vec_options(ctx)).arg(x).arg(partial).arg(rows).arg(cols)
      .arg(kColChunk).run2d(vec_items(ctx, cols), chunks, 64, 1);
  colsum_final(partial, out, scale, acc);
}

void colsum_final(const Tensor& partial, const Tensor& out, float scale, bool acc) {
  Context& ctx = partial.ctx();
  const int64_t chunks = partial.shape()[0], cols = partial.shape()[1];
  Launch(ctx, "reduce", "colsum_final", vec_options(ctx)).arg(partial).arg(out).arg(chunks)
      .arg(cols).arg(scale).arg(acc).run(vec_items(ctx, cols));
}

Tensor sum(const Tensor& x) { return sum_all(x, 1.0f, "sum"); }
Tensor mean(const Tensor& x) {
  return sum_all(x, x.numel() ? 1.0f / static_cast<float>(x.numel()) : 0.0f, "mean");
}
Tensor sum_last(const Tensor& x) { return sum_last_op(x, 1.0f, "sum_last"); }
Tensor mean_last(const Tensor& x) {
  return sum_last_op(x, 1.0f / static_cast<float>(std::max<int64_t>(1, x.shape().last())),
                     "mean_last");
}

}  // namespace magellano::ops
