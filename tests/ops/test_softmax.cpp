// softmax over the last dimension against the float64 reference (ref::softmax), at odd widths
// (C = 1, 3, 257, 1000, 5003: none a multiple of the work-group size) and row counts (1, 7, 33,
// 3-D leading dims), plus large-magnitude logits (|x| ~ 80, where exp(x) without the max
// subtracted would overflow or lose everything to rounding); perf size: 8 x 512 rows of 768.
// Tolerances: every y is exp(x - m) (a few ulp) divided by a C-term sum (a fixed tree, relative
// error about log2(C) * 2^-24 < 1e-6): forward rtol 1e-5 with atol 1e-7 for the tiny
// probabilities of wide rows. The gradient y * (dy - dot) subtracts a C-term dot product:
// rtol 1e-4, atol 1e-6 (the harness default 1e-5 would hide errors in rows of small y).
#include <cmath>

#include "magellano/ops/softmax.hpp"
#include "op_case.hpp"
#include "reference.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

namespace {

// Forward reads x and writes y (4 * 2 R C bytes), ~4 R C FLOPs (max, exp, sum, divide);
// backward reads x (y is recomputed or saved: counted as one read), dy and writes dx:
// 4 * 3 R C bytes, ~4 R C FLOPs.
Cost softmax_cost(double rows, double c) { return {4 * 2 * rows * c, 4 * rows * c, 4 * 3 * rows * c, 4 * rows * c}; }

// x is made by `values` when the case runs. fd_atol: see LargeMagnitudeLogits below.
CaseSpec softmax_case(const std::string& what, const Shape& s, std::function<Vec()> values,
                      double fd_atol = 1e-7) {
  return {"softmax " + dims(s) + what, [=] {
            const int64_t cols = s.last();
            OpCase c;
            c.inputs = {{s, values()}};
            c.device = [](auto& t) { return ops::softmax(t[0]); };
            c.ref = [=](auto& v) { return ref::softmax(v[0], cols); };
            c.ref_grad = [=](auto& v, const Vec& dy) {
              auto g = zeros_like(v);
              ref::softmax_bwd(v[0], cols, dy, g[0]);
              return g;
            };
            c.tol = Tolerance{.fwd_rtol = 1e-5, .fwd_atol = 1e-7, .grad_rtol = 1e-4, .grad_atol = 1e-6,
                              .fd_rtol = 1e-5, .fd_atol = fd_atol};
            c.sizes = {{"rows", s.numel() / cols}, {"cols", cols}};
            c.cost = softmax_cost(double(s.numel() / cols), double(cols));
            return c;
          }};
}

// Rows with one dominant logit beyond exp's fp32 range.
Vec dominant_rows() {
  Vec x = randn(5 * 33, 8);
  for (size_t r = 0; r < 5; ++r) x[r * 33 + (r * 7) % 33] = 90.0 + r;
  return x;
}

// LargeMagnitudeLogitsAreStable: logits uniform in [-80, 80] and rows with one dominant logit:
// naive exp(x) would give inf (exp(89) overflows fp32) or 0/0. Finite differences of the
// reference are taken with a step relative to |x| ~ 80, so their absolute error is larger:
// fd_atol 1e-6.
const RegisterOp reg{{"softmax",
                      {softmax_case("", Shape{7, 1}, [] { return randn(7, 1); }),  // y = 1, dx = 0
                       softmax_case("", Shape{7, 3}, [] { return randn(21, 2); }),
                       softmax_case("", Shape{33, 257}, [] { return randn(33 * 257, 3, 2.0); }),
                       softmax_case("", Shape{1, 1000}, [] { return randn(1000, 4, 3.0); }),
                       softmax_case("", Shape{3, 5003}, [] { return randn(3 * 5003, 5); }),
                       softmax_case("", Shape{2, 3, 5, 19}, [] { return randn(570, 6); }),
                       softmax_case(" pm80", Shape{7, 257}, [] { return uniform(7 * 257, 7, -80.0, 80.0); }, 1e-6),
                       softmax_case(" dominant", Shape{5, 33}, dominant_rows, 1e-6)},
                      softmax_case("", Shape{8 * 512, 768}, [] { return randn(8 * 512 * 768, 10, 2.0); })}};

}  // namespace

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
