// split_last / concat_last / transpose_last2 against float64 references. These ops only move
// fp32 values (gradients add at most once into a fresh or accumulated buffer), so forward and
// gradients are exact: every tolerance is 0 (the accumulating second backward adds g + g, which
// is exact too).
#include "harness.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/shape.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

namespace {

const Tolerance kExact{.fwd_rtol = 0, .fwd_atol = 0, .grad_rtol = 0, .grad_atol = 0};

// x (rows, d) -> columns [c0, c0 + n) as (rows, n).
Vec cols(const Vec& x, int64_t rows, int64_t d, int64_t c0, int64_t n) {
  Vec y(rows * n);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; ++j) y[r * n + j] = x[r * d + c0 + j];
  return y;
}
// Adds p (rows, n) into columns [c0, c0 + n) of g (rows, d).
void add_cols(Vec& g, const Vec& p, int64_t rows, int64_t d, int64_t c0, int64_t n) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; ++j) g[r * d + c0 + j] += p[r * n + j];
}

Vec transpose(const Vec& x, int64_t batch, int64_t m, int64_t n) {
  Vec y(x.size());
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) y[b * m * n + j * m + i] = x[b * m * n + i * n + j];
  return y;
}

}  // namespace

TEST(Shape, SplitThenConcatReordered) {
  // x (3, 7, 19) split into [5, 0, 11, 3], concatenated back as [3-piece, 5-piece, 11-piece].
  const int64_t rows = 21, d = 19;
  const std::vector<int64_t> sizes = {5, 0, 11, 3}, offs = {0, 5, 5, 16};
  check_op("split_last -> concat_last", {{Shape{3, 7, d}, randn(rows * d, 61)}},
           [&](auto& t) {
             auto p = ops::split_last(t[0], sizes);
             EXPECT_EQ(p[2].shape(), (Shape{3, 7, 11}));
             return ops::concat_last({p[3], p[0], p[2], p[1]});
           },
           [&](auto& x) {
             // row-major (rows, 3 + 5 + 11): the pieces' columns side by side
             Vec out(rows * d);
             int64_t c0 = 0;
             for (int k : {3, 0, 2}) {
               add_cols(out, cols(x[0], rows, d, offs[k], sizes[k]), rows, d, c0, sizes[k]);
               c0 += sizes[k];
             }
             return out;
           },
           [&](auto& x, const Vec& g) {
             Vec dx(x[0].size(), 0.0);
             int64_t c0 = 0;
             for (int k : {3, 0, 2}) {
               add_cols(dx, cols(g, rows, d, c0, sizes[k]), rows, d, offs[k], sizes[k]);
               c0 += sizes[k];
             }
             return std::vector<Vec>{dx};
           },
           kExact);
}

TEST(Shape, SplitPiecesWithoutGradientGiveZeros) {
  // Only the middle piece reaches the output: dx is 0 in the other columns.
  const int64_t rows = 13, d = 10;
  check_op("split_last middle piece only", {{Shape{rows, d}, randn(rows * d, 62)}},
           [](auto& t) { return ops::split_last(t[0], {2, 7, 1})[1]; },
           [&](auto& x) { return cols(x[0], rows, d, 2, 7); },
           [&](auto& x, const Vec& g) {
             Vec dx(x[0].size(), 0.0);
             add_cols(dx, g, rows, d, 2, 7);
             return std::vector<Vec>{dx};
           },
           kExact);
  // Two pieces used (their gradients meet in dx), a third unused.
  check_op("split_last two of three", {{Shape{rows, d}, randn(rows * d, 63)}},
           [](auto& t) {
             auto p = ops::split_last(t[0], {3, 4, 3});
             return ops::add(p[0], p[2], 2.0f);
           },
           [&](auto& x) {
             Vec a = cols(x[0], rows, d, 0, 3), b = cols(x[0], rows, d, 7, 3);
             for (size_t i = 0; i < a.size(); ++i) a[i] += 2.0 * b[i];
             return a;
           },
           [&](auto& x, const Vec& g) {
             Vec dx(x[0].size(), 0.0), g2 = g;
             for (auto& v : g2) v *= 2.0;
             add_cols(dx, g, rows, d, 0, 3);
             add_cols(dx, g2, rows, d, 7, 3);
             return std::vector<Vec>{dx};
           },
           // a + 2b rounds once in fp32 (rtol 2^-24 < 1e-7); the gradients stay exact.
           Tolerance{.fwd_rtol = 1e-7, .fwd_atol = 0, .grad_rtol = 0, .grad_atol = 0});
}

TEST(Shape, ConcatMixedWidthsSomeWithoutGrad) {
  const int64_t rows = 2 * 9;
  Input a{Shape{2, 9, 4}, randn(rows * 4, 64)}, b{Shape{2, 9, 1}, randn(rows, 65), false},
      c{Shape{2, 9, 6}, randn(rows * 6, 66)};
  check_op("concat_last", {a, b, c}, [](auto& t) { return ops::concat_last({t[0], t[1], t[2]}); },
           [&](auto& x) {
             Vec y(rows * 11);
             for (int64_t r = 0; r < rows; ++r) {
               for (int j = 0; j < 4; ++j) y[r * 11 + j] = x[0][r * 4 + j];
               y[r * 11 + 4] = x[1][r];
               for (int j = 0; j < 6; ++j) y[r * 11 + 5 + j] = x[2][r * 6 + j];
             }
             return y;
           },
           [&](auto&, const Vec& g) {
             return std::vector<Vec>{cols(g, rows, 11, 0, 4), Vec{}, cols(g, rows, 11, 5, 6)};
           },
           kExact);
}

TEST(Shape, TransposeLast2) {
  struct C { Shape s; int64_t batch, m, n; };
  for (const C& c : {C{Shape{3, 17, 23}, 3, 17, 23}, C{Shape{1, 33}, 1, 1, 33},
                     C{Shape{5, 40, 3}, 5, 40, 3}, C{Shape{2, 2, 37, 45}, 4, 37, 45},
                     C{Shape{16, 16}, 1, 16, 16}}) {
    check_op("transpose_last2 " + c.s.str(), {{c.s, randn(c.s.numel(), 67)}},
             [](auto& t) { return ops::transpose_last2(t[0]); },
             [c](auto& x) { return transpose(x[0], c.batch, c.m, c.n); },
             [c](auto&, const Vec& g) { return std::vector<Vec>{transpose(g, c.batch, c.n, c.m)}; },
             kExact);
  }
  Tensor y = ops::transpose_last2(upload(Shape{2, 3, 5}, randn(30, 1)));
  EXPECT_EQ(y.shape(), (Shape{2, 5, 3}));
}

TEST(Shape, BadShapesAreAClearError) {
  Tensor x = upload(Shape{4, 9}, randn(36, 1));
  try {
    ops::split_last(x, {4, 4});
    FAIL() << "expected an error";
  } catch (const magellano::Error& e) {
    EXPECT_NE(std::string(e.what()).find("sizes [4, 4] sum to 8, but the last dimension of x (4, 9) is 9"),
              std::string::npos) << e.what();
  }
  EXPECT_THROW(ops::split_last(x, {10, -1}), magellano::Error);
  EXPECT_THROW(ops::concat_last({x, upload(Shape{3, 9}, randn(27, 2))}), magellano::Error);
  EXPECT_THROW(ops::concat_last({}), magellano::Error);
  EXPECT_THROW(ops::transpose_last2(upload(Shape{5}, randn(5, 3))), magellano::Error);
}
