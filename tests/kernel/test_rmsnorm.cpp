// rms_norm against a float64 reference: forward, dx and dweight, at odd widths (D = 1, 3, 257,
// 1000, none a multiple of the work-group size) and row counts (1, 7, 33, and 3-D leading dims).
// Tolerances: each output is one D-term sum of squares (a fixed tree, relative error about
// log2(D) * 2^-24 < 1e-6) then a few roundings, so forward rtol 1e-5 / atol 1e-6. dx subtracts
// two terms of similar size (for D = 1 it is nearly all cancellation: the exact value is
// w * dy * eps / (x^2 + eps)^1.5), so gradients get an absolute floor of 1e-5 as the harness
// default; dweight sums R products (R <= 33): rtol 1e-4 / atol 1e-5.
#include <cmath>

#include "harness.hpp"
#include "magellano/ops/rmsnorm.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

namespace {

constexpr double kEps = 1e-5;

Vec ref_fwd(const Vec& x, const Vec& w, size_t d) {
  Vec y(x.size());
  for (size_t r = 0; r < x.size() / d; ++r) {
    double ss = 0;
    for (size_t c = 0; c < d; ++c) ss += x[r * d + c] * x[r * d + c];
    const double rs = 1.0 / std::sqrt(ss / double(d) + kEps);
    for (size_t c = 0; c < d; ++c) y[r * d + c] = x[r * d + c] * rs * w[c];
  }
  return y;
}

std::vector<Vec> ref_bwd(const Vec& x, const Vec& w, const Vec& dy, size_t d) {
  Vec dx(x.size()), dw(d, 0.0);
  for (size_t r = 0; r < x.size() / d; ++r) {
    double ss = 0, gx = 0;
    for (size_t c = 0; c < d; ++c) {
      ss += x[r * d + c] * x[r * d + c];
      gx += dy[r * d + c] * w[c] * x[r * d + c];
    }
    const double rs = 1.0 / std::sqrt(ss / double(d) + kEps);
    for (size_t c = 0; c < d; ++c) {
      const size_t i = r * d + c;
      dx[i] = rs * (dy[i] * w[c] - x[i] * rs * rs * gx / double(d));
      dw[c] += dy[i] * x[i] * rs;
    }
  }
  return {dx, dw};
}

void run(const Shape& s, uint64_t seed, double x_scale = 1.0) {
  const size_t d = s.last(), n = s.numel();
  check_op("rms_norm " + s.str(), {{s, randn(n, seed, x_scale)}, {Shape{int64_t(d)}, uniform(d, seed + 1, 0.5, 1.5)}},
           [](auto& t) { return ops::rms_norm(t[0], t[1], float(kEps)); },
           [d](auto& x) { return ref_fwd(x[0], x[1], d); },
           [d](auto& x, const Vec& dy) { return ref_bwd(x[0], x[1], dy, d); },
           Tolerance{.fwd_rtol = 1e-5, .fwd_atol = 1e-6, .grad_rtol = 1e-4, .grad_atol = 1e-5});
}

}  // namespace

TEST(RmsNorm, OddWidths) {
  run(Shape{7, 1}, 1);
  run(Shape{7, 3}, 2);
  run(Shape{33, 257}, 3);
  run(Shape{1, 1000}, 4);
}

TEST(RmsNorm, LeadingDimsAndScale) {
  run(Shape{3, 11, 37}, 5);
  run(Shape{2, 3, 5, 19}, 6, 40.0);  // large inputs: rsqrt keeps the scale out of the result
}

TEST(RmsNorm, OnlyOneInputNeedsAGradient) {
  const Shape s{5, 9};
  Tensor x = upload(s, randn(45, 7), true), w = upload(Shape{9}, uniform(9, 8, 0.5, 1.5));
  const Vec dy = randn(45, 9);
  magellano::autograd::backward(ops::rms_norm(x, w), upload(s, dy));
  expect_close(x.grad().to_host(), ref_bwd(to_f64(x.to_host()), to_f64(w.to_host()), dy, 9)[0],
               1e-4, 1e-5, "dx alone");
  EXPECT_FALSE(w.grad().defined());
  Tensor x2 = upload(s, randn(45, 7)), w2 = upload(Shape{9}, uniform(9, 8, 0.5, 1.5), true);
  magellano::autograd::backward(ops::rms_norm(x2, w2), upload(s, dy));
  expect_close(w2.grad().to_host(), ref_bwd(to_f64(x2.to_host()), to_f64(w2.to_host()), dy, 9)[1],
               1e-4, 1e-5, "dweight alone");
}

TEST(RmsNorm, BadShapesAreAClearError) {
  Tensor x = upload(Shape{4, 5}, randn(20, 1));
  Tensor w = upload(Shape{4}, randn(4, 2));
  try {
    ops::rms_norm(x, w);
    FAIL() << "expected an error";
  } catch (const magellano::Error& e) {
    EXPECT_NE(std::string(e.what()).find("weight must have shape (5) to match x (4, 5), got (4)"),
              std::string::npos) << e.what();
  }
  Tensor w2 = upload(Shape{1, 5}, randn(5, 3));
  EXPECT_THROW(ops::rms_norm(x, w2), magellano::Error);
  Tensor xi = magellano::Tensor::from_host_i32(test_ctx(), Shape{4, 5}, std::vector<int32_t>(20, 1));
  EXPECT_THROW(ops::rms_norm(xi, upload(Shape{5}, randn(5, 4))), magellano::Error);
}
