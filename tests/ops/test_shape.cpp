// split_last / concat_last / transpose_last2 against their float64 references (ref::cols,
// ref::transpose_last2). These ops only move fp32 values (gradients add at most once into a
// fresh or accumulated buffer), so forward and gradients are exact: every tolerance is 0 (the
// accumulating second backward adds g + g, which is exact too). Perf sizes: 8 x 512 rows of
// 768 split in three and concatenated, and (8, 512, 768) transposed.
#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/shape.hpp"
#include "op_case.hpp"
#include "reference.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

namespace {

const Tolerance kExact{.fwd_rtol = 0, .fwd_atol = 0, .grad_rtol = 0, .grad_atol = 0};

// x (rows, d) split into `sizes` and concatenated back in the order `order` (pieces not named
// in `order` are dropped): forward and backward each move every kept element once, reading it
// and writing it (8 bytes), no FLOPs.
CaseSpec split_concat_case(const Shape& s, const std::vector<int64_t>& sizes, const std::vector<int>& order,
                           uint64_t seed) {
  std::string name = "split_last " + dims(s) + " order";
  for (int k : order) name += " " + std::to_string(k);
  return {name, [=] {
            const int64_t d = s.last(), rows = s.numel() / d;
            std::vector<int64_t> offs(sizes.size(), 0);
            for (size_t k = 1; k < sizes.size(); ++k) offs[k] = offs[k - 1] + sizes[k - 1];
            int64_t width = 0;
            for (int k : order) width += sizes[k];
            OpCase c;
            c.inputs = {{s, randn(s.numel(), seed)}};
            c.device = [=](auto& t) {
              auto p = ops::split_last(t[0], sizes);
              std::vector<Tensor> kept;
              for (int k : order) kept.push_back(p[k]);
              return kept.size() == 1 ? kept[0] : ops::concat_last(kept);
            };
            c.ref = [=](auto& x) {
              Vec out(rows * width, 0.0);
              int64_t c0 = 0;
              for (int k : order) {
                ref::cols_bwd(out, rows, width, c0, sizes[k], ref::cols(x[0], rows, d, offs[k], sizes[k]));
                c0 += sizes[k];
              }
              return out;
            };
            c.ref_grad = [=](auto& x, const Vec& g) {
              auto dx = zeros_like(x);
              int64_t c0 = 0;
              for (int k : order) {
                ref::cols_bwd(dx[0], rows, d, offs[k], sizes[k], ref::cols(g, rows, width, c0, sizes[k]));
                c0 += sizes[k];
              }
              return dx;
            };
            c.tol = kExact;
            c.sizes = {{"x", dims(s)}, {"kept_width", width}};
            c.cost = {8.0 * rows * width, 0, 8.0 * rows * width, 0};
            return c;
          }};
}

// Two pieces used (their gradients meet in dx), a third unused: p0 + 2 p2. The forward reads
// 2 * 3 columns and writes 3 (4 * 9 rows bytes, 2 FLOPs a value); the backward writes dx.
CaseSpec two_of_three_case() {
  const int64_t rows = 13, d = 10;
  return {"split_last 13x10 two of three", [=] {
            OpCase c;
            c.inputs = {{Shape{rows, d}, randn(rows * d, 63)}};
            c.device = [](auto& t) {
              auto p = ops::split_last(t[0], {3, 4, 3});
              return ops::add(p[0], p[2], 2.0f);
            };
            c.ref = [=](auto& x) {
              return ref::add(ref::cols(x[0], rows, d, 0, 3), ref::cols(x[0], rows, d, 7, 3), 2.0);
            };
            c.ref_grad = [=](auto& x, const Vec& g) {
              auto dx = zeros_like(x);
              ref::cols_bwd(dx[0], rows, d, 0, 3, g);
              ref::cols_bwd(dx[0], rows, d, 7, 3, ref::scale(g, 2.0));
              return dx;
            };
            // a + 2b rounds once in fp32 (rtol 2^-24 < 1e-7); the gradients stay exact.
            c.tol = Tolerance{.fwd_rtol = 1e-7, .fwd_atol = 0, .grad_rtol = 0, .grad_atol = 0};
            c.sizes = {{"x", "13x10"}};
            c.cost = {4.0 * rows * 9, 2.0 * rows * 3, 4.0 * rows * 13, 0};
            return c;
          }};
}

// x (2, 9, 4), y (2, 9, 1) without gradient, z (2, 9, 6) concatenated: 11 columns moved.
CaseSpec concat_case(int64_t b, int64_t l) {
  return {"concat_last " + std::to_string(b) + "x" + std::to_string(l) + " widths 4 1 6", [=] {
            const int64_t rows = b * l;
            OpCase c;
            c.inputs = {{Shape{b, l, 4}, randn(rows * 4, 64)},
                        {Shape{b, l, 1}, randn(rows, 65), false},
                        {Shape{b, l, 6}, randn(rows * 6, 66)}};
            c.device = [](auto& t) { return ops::concat_last({t[0], t[1], t[2]}); };
            c.ref = [=](auto& x) {
              Vec y(rows * 11, 0.0);
              ref::cols_bwd(y, rows, 11, 0, 4, x[0]);
              ref::cols_bwd(y, rows, 11, 4, 1, x[1]);
              ref::cols_bwd(y, rows, 11, 5, 6, x[2]);
              return y;
            };
            c.ref_grad = [=](auto&, const Vec& g) {
              return std::vector<Vec>{ref::cols(g, rows, 11, 0, 4), Vec{}, ref::cols(g, rows, 11, 5, 6)};
            };
            c.tol = kExact;
            c.sizes = {{"rows", rows}, {"widths", "4 1 6"}};
            c.cost = {8.0 * rows * 11, 0, 8.0 * rows * 10, 0};
            return c;
          }};
}

// x (batch, m, n) -> (batch, n, m): every value read and written once, both ways.
CaseSpec transpose_case(const Shape& s, int64_t batch, int64_t m, int64_t n) {
  return {"transpose_last2 " + dims(s), [=] {
            OpCase c;
            c.inputs = {{s, randn(s.numel(), 67)}};
            c.device = [](auto& t) { return ops::transpose_last2(t[0]); };
            c.ref = [=](auto& x) { return ref::transpose_last2(x[0], batch, m, n); };
            c.ref_grad = [=](auto&, const Vec& g) { return std::vector<Vec>{ref::transpose_last2(g, batch, n, m)}; };
            c.tol = kExact;
            c.sizes = {{"x", dims(s)}};
            c.cost = {8.0 * s.numel(), 0, 8.0 * s.numel(), 0};
            return c;
          }};
}

// x (3, 7, 19) split into [5, 0, 11, 3], concatenated back as [3-piece, 5-piece, 11-piece,
// the empty piece]; and
// only the middle piece of [2, 7, 1] reaching the output (dx is 0 in the other columns).
const RegisterOp reg_split{{"split_last",
                            {split_concat_case(Shape{3, 7, 19}, {5, 0, 11, 3}, {3, 0, 2, 1}, 61),
                             split_concat_case(Shape{13, 10}, {2, 7, 1}, {1}, 62), two_of_three_case()},
                            split_concat_case(Shape{8 * 512, 768}, {256, 256, 256}, {2, 0, 1}, 61)}};

const RegisterOp reg_concat{{"concat_last", {concat_case(2, 9)}, concat_case(8, 512)}};

const RegisterOp reg_transpose{{"transpose_last2",
                                {transpose_case(Shape{3, 17, 23}, 3, 17, 23), transpose_case(Shape{1, 33}, 1, 1, 33),
                                 transpose_case(Shape{5, 40, 3}, 5, 40, 3),
                                 transpose_case(Shape{2, 2, 37, 45}, 4, 37, 45),
                                 transpose_case(Shape{16, 16}, 1, 16, 16)},
                                transpose_case(Shape{8, 512, 768}, 8, 512, 768)}};

}  // namespace

TEST(Shape, SplitPieceShapes) {
  const auto p = ops::split_last(upload(Shape{3, 7, 19}, randn(3 * 7 * 19, 61)), {5, 0, 11, 3});
  EXPECT_EQ(p[2].shape(), (Shape{3, 7, 11}));
}

TEST(Shape, TransposeLast2Shape) {
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
