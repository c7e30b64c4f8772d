#include "magellano/ops/dropout.hpp"

#include "check.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/launch.hpp"

namespace magellano::ops {
namespace {

void launch_dropout(const Tensor& x, const Tensor& out, float p, uint64_t seed) {
  const int64_t n = x.numel();
  if (n == 0) return;
  Launch(x.ctx(), "dropout", "dropout")
      .arg(x).arg(out).arg(n).arg(static_cast<int64_t>(seed)).arg(p).arg(1.0f / (1.0f - p))
      .run(n);
}

}  // namespace

bool dropout_keeps(uint64_t seed, uint64_t i, float p) {
  uint64_t z = seed + i + 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return static_cast<float>(z >> 40) * (1.0f / 16777216.0f) >= p;
}

Tensor dropout(const Tensor& x, float p, uint64_t seed) {
  detail::require_f32(x, "dropout", "x");
  if (!(p >= 0.0f && p < 1.0f)) throw Error("dropout: p must be in [0, 1).");
  if (p == 0.0f) return x;
  Tensor out = Tensor::empty(x.ctx(), x.shape());
  launch_dropout(x, out, p, seed);
  if (autograd::any_requires_grad({x}))
    autograd::record(out, [mx = autograd::grad_meta(x), p, seed](const Tensor& dy) {
      auto g = autograd::grad_target(mx);
      if (!g.accumulate) {
        launch_dropout(dy, g.tensor, p, seed);
        return;
      }
      Tensor d = Tensor::empty(dy.ctx(), dy.shape(), DType::f32, MemCategory::scratch);
      launch_dropout(dy, d, p, seed);
      scale_into(d, 1.0f, g.tensor, true);
    });
  return out;
}

}  // namespace magellano::ops
