// matmul through CLBlast: every transpose combination, strided batched, a batched input with a
// shared 2-D weight, and bias. Each output element is a K-term fp32 dot product: rtol 1e-5 with
// atol 1e-5 * sqrt(K) covers its rounding; gradients are dot products over M or N terms.
#include <cmath>

#include "harness.hpp"
#include "magellano/ops/matmul.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

namespace {

// op(A)(i, k) for A stored row-major (rows, cols) in batch b.
double at(const Vec& a, int64_t b, int64_t rows, int64_t cols, bool t, int64_t i, int64_t k) {
  return t ? a[b * rows * cols + k * cols + i] : a[b * rows * cols + i * cols + k];
}

struct Case {
  int64_t batch, m, n, k;
  bool ta, tb, bias, shared_b;  // shared_b: b is 2-D and reused by every batch
};

void run(const Case& c) {
  const std::string name = "matmul b" + std::to_string(c.batch) + " m" + std::to_string(c.m) +
                           " n" + std::to_string(c.n) + " k" + std::to_string(c.k) +
                           (c.ta ? " ta" : "") + (c.tb ? " tb" : "") + (c.bias ? " bias" : "") +
                           (c.shared_b ? " shared" : "");
  const int64_t ar = c.ta ? c.k : c.m, ac = c.ta ? c.m : c.k;
  const int64_t br = c.tb ? c.n : c.k, bc = c.tb ? c.k : c.n;
  const int64_t bb = c.shared_b ? 1 : c.batch;
  auto shape3 = [&](int64_t b, int64_t r, int64_t cc, bool two_d) {
    return (c.batch == 1 || two_d) ? Shape{r, cc} : Shape{b, r, cc};
  };
  std::vector<Input> in = {{shape3(c.batch, ar, ac, false), randn(c.batch * ar * ac, 11)},
                           {shape3(bb, br, bc, c.shared_b), randn(bb * br * bc, 12)}};
  if (c.bias) in.push_back({Shape{c.n}, randn(c.n, 13)});
  auto fwd = [c, ar, ac, br, bc](const std::vector<Vec>& x) {
    Vec y(c.batch * c.m * c.n);
    for (int64_t b = 0; b < c.batch; ++b)
      for (int64_t i = 0; i < c.m; ++i)
        for (int64_t j = 0; j < c.n; ++j) {
          double s = c.bias ? x[2][j] : 0.0;
          for (int64_t k = 0; k < c.k; ++k)
            s += at(x[0], b, ar, ac, c.ta, i, k) * at(x[1], c.shared_b ? 0 : b, br, bc, c.tb, k, j);
          y[(b * c.m + i) * c.n + j] = s;
        }
    return y;
  };
  auto bwd = [c, ar, ac, br, bc](const std::vector<Vec>& x, const Vec& d) {
    Vec da(x[0].size(), 0.0), db(x[1].size(), 0.0), dbias(c.bias ? c.n : 0, 0.0);
    for (int64_t b = 0; b < c.batch; ++b)
      for (int64_t i = 0; i < c.m; ++i)
        for (int64_t j = 0; j < c.n; ++j) {
          const double g = d[(b * c.m + i) * c.n + j];
          if (c.bias) dbias[j] += g;
          const int64_t b2 = c.shared_b ? 0 : b;
          for (int64_t k = 0; k < c.k; ++k) {
            const int64_t ia = c.ta ? b * ar * ac + k * ac + i : b * ar * ac + i * ac + k;
            const int64_t ib = c.tb ? b2 * br * bc + j * bc + k : b2 * br * bc + k * bc + j;
            da[ia] += g * x[1][ib];
            db[ib] += g * x[0][ia];
          }
        }
    std::vector<Vec> out = {da, db};
    if (c.bias) out.push_back(dbias);
    return out;
  };
  const double k_atol = 1e-5 * std::sqrt(double(std::max(c.k, std::max(c.m, c.n))));
  check_op(name, in,
           [c](auto& t) { return ops::matmul(t[0], t[1], c.ta, c.tb, c.bias ? t[2] : Tensor()); },
           fwd, bwd, Tolerance{.fwd_rtol = 1e-5, .fwd_atol = k_atol, .grad_rtol = 1e-5, .grad_atol = k_atol});
}

}  // namespace

TEST(Matmul, EveryTransposeCombination) {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) run({1, 13, 17, 19, ta, tb, false, false});
}

// One row takes the matrix-vector path (GEMV; decoding one sequence); a few rows, GEMM.
TEST(Matmul, FewRowsTakeTheMatrixVectorPath) {
  for (int64_t m : {1, 3, 8})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) run({1, m, 37, 29, ta, tb, false, false});
  run({1, 1, 41, 23, false, true, true, false});  // linear's shape, with bias
  run({5, 1, 11, 7, false, true, false, true});   // batched input, shared weight: 5 rows
}

TEST(Matmul, Bias) { run({1, 33, 7, 65, false, true, true, false}); }

TEST(Matmul, StridedBatchedEveryTranspose) {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) run({3, 9, 11, 5, ta, tb, false, false});
}

TEST(Matmul, BatchedInputSharedWeightLikeLinear) {
  run({4, 7, 10, 6, false, true, true, true});
  run({2, 5, 3, 8, false, false, false, true});
}

TEST(Matmul, MismatchedShapesAreAClearError) {
  Tensor a = upload(Shape{4, 5}, randn(20, 1)), b = upload(Shape{6, 3}, randn(18, 2));
  EXPECT_THROW(ops::matmul(a, b), magellano::Error);
  try {
    ops::matmul(a, b);
  } catch (const magellano::Error& e) {
    EXPECT_NE(std::string(e.what()).find("inner dimensions differ"), std::string::npos) << e.what();
  }
}
