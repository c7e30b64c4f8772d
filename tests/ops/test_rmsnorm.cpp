// rms_norm against the float64 reference (ref::rmsnorm): forward, dx and dweight, at odd widths
// (D = 1, 3, 257, 1000, none a multiple of the work-group size) and row counts (1, 7, 33, and
// 3-D leading dims); perf size: a training shape, 8 x 512 rows of width 768.
// Tolerances: each output is one D-term sum of squares (a fixed tree, relative error about
// log2(D) * 2^-24 < 1e-6) then a few roundings, so forward rtol 1e-5 / atol 1e-6. dx subtracts
// two terms of similar size (for D = 1 it is nearly all cancellation: the exact value is
// w * dy * eps / (x^2 + eps)^1.5), so gradients get an absolute floor of 1e-5 as the harness
// default; dweight sums R products (R <= 33): rtol 1e-4 / atol 1e-5.
#include <cmath>

#include "magellano/ops/rmsnorm.hpp"
#include "op_case.hpp"
#include "reference.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

namespace {

constexpr double kEps = 1e-5;

// Forward reads x and w and writes y: 4 (2 R D + D) bytes, ~4 R D FLOPs (square, sum, two
// scalings). Backward reads x, w, dy and writes dx, dw: 4 (3 R D + 2 D) bytes, ~8 R D FLOPs.
Cost rms_norm_cost(double rows, double d) {
  return {4 * (2 * rows * d + d), 4 * rows * d, 4 * (3 * rows * d + 2 * d), 8 * rows * d};
}

CaseSpec rms_norm_case(const Shape& s, uint64_t seed, double x_scale = 1.0) {
  const std::string scale = x_scale == 1.0 ? "" : " scale " + std::to_string(int(x_scale));
  return {"rms_norm " + dims(s) + scale, [=] {
            const int64_t d = s.last(), rows = s.numel() / d;
            OpCase c;
            c.inputs = {{s, randn(s.numel(), seed, x_scale)}, {Shape{d}, uniform(d, seed + 1, 0.5, 1.5)}};
            c.device = [](auto& t) { return ops::rms_norm(t[0], t[1], float(kEps)); };
            c.ref = [=](auto& x) { return ref::rmsnorm(x[0], rows, d, x[1], kEps); };
            c.ref_grad = [=](auto& x, const Vec& dy) {
              auto g = zeros_like(x);
              ref::rmsnorm_bwd(x[0], rows, d, x[1], kEps, dy, g[0], g[1]);
              return g;
            };
            c.tol = Tolerance{.fwd_rtol = 1e-5, .fwd_atol = 1e-6, .grad_rtol = 1e-4, .grad_atol = 1e-5};
            c.sizes = {{"rows", rows}, {"d", d}};
            c.cost = rms_norm_cost(double(rows), double(d));
            return c;
          }};
}

const RegisterOp reg{{"rms_norm",
                      {rms_norm_case(Shape{7, 1}, 1), rms_norm_case(Shape{7, 3}, 2),
                       rms_norm_case(Shape{33, 257}, 3), rms_norm_case(Shape{1, 1000}, 4),
                       rms_norm_case(Shape{3, 11, 37}, 5),
                       // large inputs: rsqrt keeps the scale out of the result
                       rms_norm_case(Shape{2, 3, 5, 19}, 6, 40.0)},
                      rms_norm_case(Shape{8 * 512, 768}, 9)}};

// dx alone and dweight alone, from ref::rmsnorm_bwd's two outputs.
std::vector<Vec> ref_grads(const Tensor& x, const Tensor& w, const Vec& dy, int64_t d) {
  const Vec xv = to_f64(x.to_host()), wv = to_f64(w.to_host());
  Vec dx(xv.size(), 0.0), dw(d, 0.0);
  ref::rmsnorm_bwd(xv, int64_t(xv.size()) / d, d, wv, kEps, dy, dx, dw);
  return {dx, dw};
}

}  // namespace

TEST(RmsNorm, OnlyOneInputNeedsAGradient) {
  const Shape s{5, 9};
  Tensor x = upload(s, randn(45, 7), true), w = upload(Shape{9}, uniform(9, 8, 0.5, 1.5));
  const Vec dy = randn(45, 9);
  magellano::autograd::backward(ops::rms_norm(x, w), upload(s, dy));
  expect_close(x.grad().to_host(), ref_grads(x, w, dy, 9)[0], 1e-4, 1e-5, "dx alone");
  EXPECT_FALSE(w.grad().defined());
  Tensor x2 = upload(s, randn(45, 7)), w2 = upload(Shape{9}, uniform(9, 8, 0.5, 1.5), true);
  magellano::autograd::backward(ops::rms_norm(x2, w2), upload(s, dy));
  expect_close(w2.grad().to_host(), ref_grads(x2, w2, dy, 9)[1], 1e-4, 1e-5, "dweight alone");
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
