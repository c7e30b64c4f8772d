#include "magellano/ops/rope.hpp"

#include <cmath>
#include <map>
#include <mutex>
#include <numbers>
#include <string>
#include <tuple>
#include <vector>

#include "check.hpp"
#include "magellano/ops/launch.hpp"
#include "magellano/ops/mapping.hpp"

namespace magellano::ops {
namespace {

constexpr int64_t kMaxPosition = int64_t(1) << 24;  // positions are exact in a float below this

// (2, d/2): the turns per position of each pair, inv_freq_i / 2π with inv_freq_i = theta^(-2i/d) in
// double, split into a float and the float of the remainder. Built and uploaded once per context,
// head width and theta.
Tensor turns_table(Context& ctx, int64_t d, double theta) {
  static std::mutex mutex;
  static auto* tables = new std::map<std::tuple<const Context*, int64_t, double>, Tensor>;  // like contexts
  std::lock_guard<std::mutex> lock(mutex);
  Tensor& t = (*tables)[{&ctx, d, theta}];
  if (!t.defined()) {
    const int64_t half = d / 2;
    std::vector<float> v(2 * half);
    for (int64_t i = 0; i < half; ++i) {
      const double turns = std::pow(theta, -2.0 * double(i) / double(d)) / (2.0 * std::numbers::pi);
      v[i] = static_cast<float>(turns);
      v[half + i] = static_cast<float>(turns - double(v[i]));
    }
    t = Tensor::from_host(ctx, Shape{2, half}, v, DType::f32, MemCategory::scratch);
  }
  return t;
}

struct RopeRun {
  int64_t rows, l, heads, half, start;
};

void launch(const Tensor& x, const Tensor& turns, const Tensor& y, const RopeRun& r, bool inverse, bool acc) {
  Context& ctx = x.ctx();
  int64_t vec = 1;
  if (kernel_mapping(ctx) == KernelMapping::cpu)
    for (int64_t w : {16, 8, 4, 2})
      if (r.half % w == 0) {
        vec = w;
        break;
      }
  Launch(ctx, "rope", "rope", BuildOptions().define("VEC", vec))
      .arg(x).arg(turns).arg(y).arg(r.rows).arg(r.l).arg(r.heads).arg(r.half).arg(r.start).arg(inverse).arg(acc)
      .run(r.rows * (r.half / vec), default_local_size(ctx));
}

}  // namespace

Tensor rope(const Tensor& x, const RopeOptions& opt) {
  detail::require_f32(x, "rope", "x");
  if (x.shape().ndim() != 4)
    throw Error("rope: x must be (B, L, heads, d), got " + x.shape().str() + ".");
  const int64_t d = x.size(3);
  if (d < 2 || d % 2)
    throw Error("rope: the head width d = " + std::to_string(d) + " must be even (pairs i, i + d/2).");
  if (!(opt.theta > 0.0) || !std::isfinite(opt.theta))
    throw Error("rope: theta must be a finite positive number, got " + std::to_string(opt.theta) + ".");
  if (opt.start < 0 || opt.start + x.size(1) > kMaxPosition)
    throw Error("rope: positions " + std::to_string(opt.start) + " .. " + std::to_string(opt.start + x.size(1) - 1) +
                " must lie in [0, 2^24).");
  Context& ctx = x.ctx();
  const RopeRun r{x.numel() / d, x.size(1), x.size(2), d / 2, opt.start};
  const Tensor turns = turns_table(ctx, d, opt.theta);
  Tensor y = Tensor::empty(ctx, x.shape());
  launch(x, turns, y, r, false, false);
  if (autograd::any_requires_grad({x})) {
    autograd::record(y, [m = autograd::grad_meta(x), turns, r](const Tensor& dy) {
      const autograd::GradTarget g = autograd::grad_target(m);
      launch(dy, turns, g.tensor, r, true, g.accumulate);  // the inverse rotation
    });
  }
  return y;
}

}  // namespace magellano::ops
