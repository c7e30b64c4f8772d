#include "magellano/ops/reduce.hpp"

#include <algorithm>

#include "check.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/launch.hpp"

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

void sum_last_into(const Tensor& x, const Tensor& out, float scale, bool acc) {
  const int64_t cols = x.shape().last(), rows = x.shape().rows();
  Launch(x.ctx(), "reduce", "sum_last").arg(x).arg(out).arg(rows).arg(cols).arg(scale)
      .arg(acc).run(rows * kLocal, kLocal);
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
      Launch(dy.ctx(), "elementwise", "spread_rows").arg(dy).arg(g.tensor).arg(n).arg(n).arg(s)
          .arg(g.accumulate).run(n);
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
      const int64_t cols = mx->shape.last(), n = mx->shape.numel();
      Launch(dy.ctx(), "elementwise", "spread_rows").arg(dy).arg(g.tensor).arg(n).arg(cols)
          .arg(s).arg(g.accumulate).run(n);
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
  Launch(ctx, "reduce", "colsum_partial").arg(x).arg(partial).arg(rows).arg(cols).arg(kColChunk)
      .run2d(cols, chunks, 64, 1);
  Launch(ctx, "reduce", "colsum_final").arg(partial).arg(out).arg(chunks).arg(cols).arg(scale)
      .arg(acc).run(cols);
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
