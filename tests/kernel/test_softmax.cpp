// softmax over the last dimension against a float64 reference, at odd widths (C = 1, 3, 257,
// 1000, 5003: none a multiple of the work-group size) and row counts (1, 7, 33, 3-D leading
// dims), plus large-magnitude logits (|x| ~ 80, where exp(x) without the max subtracted would
// overflow or lose everything to rounding).
// Tolerances: every y is exp(x - m) (a few ulp) divided by a C-term sum (a fixed tree, relative
// error about log2(C) * 2^-24 < 1e-6): forward rtol 1e-5 with atol 1e-7 for the tiny
// probabilities of wide rows. The gradient y * (dy - dot) subtracts a C-term dot product:
// rtol 1e-4, atol 1e-6 (the harness default 1e-5 would hide errors in rows of small y).
#include <cmath>

#include "harness.hpp"
#include "magellano/ops/softmax.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

namespace {

Vec ref_fwd(const Vec& x, size_t c_n) {
  Vec y(x.size());
  for (size_t r = 0; r < x.size() / c_n; ++r) {
    double m = -INFINITY, s = 0;
    for (size_t c = 0; c < c_n; ++c) m = std::max(m, x[r * c_n + c]);
    for (size_t c = 0; c < c_n; ++c) s += std::exp(x[r * c_n + c] - m);
    for (size_t c = 0; c < c_n; ++c) y[r * c_n + c] = std::exp(x[r * c_n + c] - m) / s;
  }
  return y;
}

Vec ref_bwd(const Vec& x, const Vec& dy, size_t c_n) {
  const Vec y = ref_fwd(x, c_n);
  Vec dx(x.size());
  for (size_t r = 0; r < x.size() / c_n; ++r) {
    double dot = 0;
    for (size_t c = 0; c < c_n; ++c) dot += dy[r * c_n + c] * y[r * c_n + c];
    for (size_t c = 0; c < c_n; ++c) dx[r * c_n + c] = y[r * c_n + c] * (dy[r * c_n + c] - dot);
  }
  return dx;
}

void run(const Shape& s, const Vec& x, double fd_atol = 1e-7) {
  const size_t c_n = s.last();
  check_op("softmax " + s.str(), {{s, x}}, [](auto& t) { return ops::softmax(t[0]); },
           [c_n](auto& v) { return ref_fwd(v[0], c_n); },
           [c_n](auto& v, const Vec& dy) { return std::vector<Vec>{ref_bwd(v[0], dy, c_n)}; },
           Tolerance{.fwd_rtol = 1e-5, .fwd_atol = 1e-7, .grad_rtol = 1e-4, .grad_atol = 1e-6,
                     .fd_rtol = 1e-5, .fd_atol = fd_atol});
}

}  // namespace

TEST(Softmax, OddWidths) {
  run(Shape{7, 1}, randn(7, 1));  // a single column: y = 1, dx = 0
  run(Shape{7, 3}, randn(21, 2));
  run(Shape{33, 257}, randn(33 * 257, 3, 2.0));
  run(Shape{1, 1000}, randn(1000, 4, 3.0));
  run(Shape{3, 5003}, randn(3 * 5003, 5));
}

TEST(Softmax, LeadingDims) { run(Shape{2, 3, 5, 19}, randn(570, 6)); }

TEST(Softmax, LargeMagnitudeLogitsAreStable) {
  // Logits uniform in [-80, 80] and rows with one dominant logit: naive exp(x) would give inf
  // (exp(89) overflows fp32) or 0/0. Finite differences of the reference are taken with a step
  // relative to |x| ~ 80, so their absolute error is larger: fd_atol 1e-6.
  run(Shape{7, 257}, uniform(7 * 257, 7, -80.0, 80.0), 1e-6);
  Vec x = randn(5 * 33, 8);
  for (size_t r = 0; r < 5; ++r) x[r * 33 + (r * 7) % 33] = 90.0 + r;  // beyond exp's fp32 range
  run(Shape{5, 33}, x, 1e-6);
}

TEST(Softmax, RowsSumToOneEvenWhenHuge) {
  Vec x = uniform(4 * 1000, 9, -85.0, 85.0);
  Tensor y = ops::softmax(upload(Shape{4, 1000}, x));
  const auto h = y.to_host();
  for (size_t r = 0; r < 4; ++r) {
    double s = 0;
    for (size_t c = 0; c < 1000; ++c) s += h[r * 1000 + c];
    EXPECT_NEAR(s, 1.0, 1e-5) << "row " << r;
  }
}

TEST(Softmax, BadInputIsAClearError) {
  Tensor xi = magellano::Tensor::from_host_i32(test_ctx(), Shape{4, 5}, std::vector<int32_t>(20, 1));
  try {
    ops::softmax(xi);
    FAIL() << "expected an error";
  } catch (const magellano::Error& e) {
    EXPECT_NE(std::string(e.what()).find("softmax: 'x' must be f32, got i32"), std::string::npos)
        << e.what();
  }
}
