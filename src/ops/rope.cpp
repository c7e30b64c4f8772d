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

// Pairs per work-item: wide vectors on CPUs, one pair on GPUs.
int64_t vec_for(Context& ctx, int64_t half) {
  if (kernel_mapping(ctx) == KernelMapping::cpu)
    for (int64_t w : {16, 8, 4, 2})
      if (half % w == 0) return w;
  return 1;
}

void launch(const Tensor& x, const Tensor& turns, const Tensor& y, const RopeRun& r, bool inverse, bool acc) {
  Context& ctx = x.ctx();
  const int64_t vec = vec_for(ctx, r.half);
  Launch(ctx, "rope", "rope", BuildOptions().define("VEC", vec))
      .arg(x).arg(turns).arg(y).arg(r.rows).arg(r.l).arg(r.heads).arg(r.half).arg(r.start).arg(inverse).arg(acc)
      .run(r.rows * (r.half / vec), default_local_size(ctx));
}

// x (B, L, heads, d) even d, f32: its checks, shared by rope and rope_at.
void check_x(const Tensor& x, double theta, const char* op) {
  detail::require_f32(x, op, "x");
  if (x.shape().ndim() != 4)
    throw Error(std::string(op) + ": x must be (B, L, heads, d), got " + x.shape().str() + ".");
  const int64_t d = x.size(3);
  if (d < 2 || d % 2)
    throw Error(std::string(op) + ": the head width d = " + std::to_string(d) + " must be even (pairs i, i + d/2).");
  if (!(theta > 0.0) || !std::isfinite(theta))
    throw Error(std::string(op) + ": theta must be a finite positive number, got " + std::to_string(theta) + ".");
}

}  // namespace

Tensor rope(const Tensor& x, const RopeOptions& opt) {
  check_x(x, opt.theta, "rope");
  const int64_t d = x.size(3);
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

Tensor rope_at(const Tensor& x, const Tensor& first, double theta) {
  check_x(x, theta, "rope_at");
  if (first.dtype() != DType::i32 || first.shape() != Shape{x.size(0)})
    throw Error("rope_at: first must be (" + std::to_string(x.size(0)) + ") i32, got " + first.shape().str() + " " +
                to_string(first.dtype()) + ".");
  Context& ctx = x.ctx();
  const int64_t d = x.size(3), half = d / 2, rows = x.numel() / d, vec = vec_for(ctx, half);
  const Tensor turns = turns_table(ctx, d, theta);
  Tensor y = Tensor::empty(ctx, x.shape());
  Launch(ctx, "rope", "rope_at", BuildOptions().define("VEC", vec))
      .arg(x).arg(first).arg(turns).arg(y).arg(rows).arg(x.size(1)).arg(x.size(2)).arg(half)
      .run(rows * (half / vec), default_local_size(ctx));
  return y;
}

namespace {

// rope_2d's checks and launch; mode 1: ids = first (B), mode 2: ids (B, L, 2).
void check_2d(const Tensor& x, const Tensor& ids, double theta, int mode, const char* op) {
  check_x(x, theta, op);
  if (x.size(3) % 4)
    throw Error(std::string(op) + ": the head width d = " + std::to_string(x.size(3)) +
                " must be a multiple of 4 (two halves of pairs i, i + d/4).");
  const Shape want = mode == 1 ? Shape{x.size(0)} : Shape{x.size(0), x.size(1), 2};
  if (ids.dtype() != DType::i32 || ids.shape() != want)
    throw Error(std::string(op) + ": the ids must be " + want.str() + " i32, got " + ids.shape().str() + " " +
                to_string(ids.dtype()) + ".");
}

void launch_2d(const Tensor& x, const Tensor& ids, const Tensor& turns, const Tensor& y, int mode, bool inverse,
               bool acc) {
  Context& ctx = x.ctx();
  const int64_t npairs = x.size(3) / 4, rows = x.numel() / (2 * npairs), vec = vec_for(ctx, npairs);
  Launch(ctx, "rope", "rope_2d", BuildOptions().define("VEC", vec))
      .arg(x).arg(ids).arg(turns).arg(y).arg(rows).arg(x.size(1)).arg(x.size(2)).arg(npairs).arg(mode).arg(inverse)
      .arg(acc).run(rows * (npairs / vec), default_local_size(ctx));
}

Tensor rope_2d_mode(const Tensor& x, const Tensor& ids, double theta, int mode, const char* op) {
  check_2d(x, ids, theta, mode, op);
  const Tensor turns = turns_table(x.ctx(), x.size(3) / 2, theta);
  Tensor y = Tensor::empty(x.ctx(), x.shape());
  launch_2d(x, ids, turns, y, mode, false, false);
  if (autograd::any_requires_grad({x})) {
    autograd::record(y, [m = autograd::grad_meta(x), ids, turns, mode](const Tensor& dy) {
      const autograd::GradTarget g = autograd::grad_target(m);
      launch_2d(dy, ids, turns, g.tensor, mode, true, g.accumulate);  // the inverse rotation
    });
  }
  return y;
}

}  // namespace

Tensor rope_2d(const Tensor& x, const Tensor& ids, double theta) { return rope_2d_mode(x, ids, theta, 2, "rope_2d"); }

Tensor rope_2d_at(const Tensor& x, const Tensor& first, double theta) {
  return rope_2d_mode(x, first, theta, 1, "rope_2d_at");
}

}  // namespace magellano::ops
