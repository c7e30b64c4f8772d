// sum / mean / sum_last / mean_last. fp32 tree sums of n terms have error ~log2(n) ulp of the
// sum of magnitudes; for the sizes here rtol 1e-5 with a small atol covers it.
#include "harness.hpp"
#include "magellano/ops/reduce.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

TEST(Reduce, SumAndMeanAll) {
  for (int64_t n : {1, 255, 257, 70001}) {
    const Shape s{n};
    const Tolerance tol{.fwd_rtol = 1e-5, .fwd_atol = 1e-4};
    check_op("sum n=" + std::to_string(n), {{s, randn(n, n)}}, [](auto& t) { return ops::sum(t[0]); },
             [](auto& x) { double a = 0; for (double v : x[0]) a += v; return Vec{a}; },
             [](auto& x, const Vec& d) { return std::vector<Vec>{Vec(x[0].size(), d[0])}; }, tol);
    check_op("mean n=" + std::to_string(n), {{s, randn(n, n + 1)}}, [](auto& t) { return ops::mean(t[0]); },
             [](auto& x) { double a = 0; for (double v : x[0]) a += v; return Vec{a / x[0].size()}; },
             [](auto& x, const Vec& d) { return std::vector<Vec>{Vec(x[0].size(), d[0] / x[0].size())}; }, tol);
  }
}

TEST(Reduce, SumAndMeanLast) {
  const Shape s{3, 7, 301};
  const size_t rows = 21, cols = 301;
  check_op("sum_last", {{s, randn(s.numel(), 9)}}, [](auto& t) { return ops::sum_last(t[0]); },
           [&](auto& x) { Vec y(rows, 0.0); for (size_t i = 0; i < x[0].size(); ++i) y[i / cols] += x[0][i]; return y; },
           [&](auto& x, const Vec& d) { Vec g(x[0].size()); for (size_t i = 0; i < g.size(); ++i) g[i] = d[i / cols]; return std::vector<Vec>{g}; });
  check_op("mean_last", {{s, randn(s.numel(), 10)}}, [](auto& t) { return ops::mean_last(t[0]); },
           [&](auto& x) { Vec y(rows, 0.0); for (size_t i = 0; i < x[0].size(); ++i) y[i / cols] += x[0][i] / cols; return y; },
           [&](auto& x, const Vec& d) { Vec g(x[0].size()); for (size_t i = 0; i < g.size(); ++i) g[i] = d[i / cols] / cols; return std::vector<Vec>{g}; });
}

TEST(Reduce, SumIsDeterministic) {
  Tensor x = upload(Shape{100003}, randn(100003, 77));
  const float a = ops::sum(x).item(), b = ops::sum(x).item();
  EXPECT_EQ(a, b);  // bit for bit
}
