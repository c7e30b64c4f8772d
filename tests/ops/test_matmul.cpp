// matmul (ops::gemm's paths; CLBlast or our kernels) against the float64 reference
// (ref::matmul): every transpose combination, strided batched, a batched input with a shared
// 2-D weight, bias, and the matrix-vector shapes of decoding; perf size: a linear layer of a
// training step, (8 x 512, 768) · (768, 768)ᵀ + bias. Each output element is a K-term fp32 dot
// product: rtol 1e-5 with atol 1e-5 * sqrt(K) covers its rounding; gradients are dot products
// over M or N terms.
#include <cmath>

#include "magellano/ops/matmul.hpp"
#include "op_case.hpp"
#include "reference.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

namespace {

struct Case {
  int64_t batch, m, n, k;
  bool ta, tb, bias, shared_b;  // shared_b: b is 2-D and reused by every batch
};

// Forward: 2 batch M N K FLOPs, reading a and b and writing y once each (the minimum traffic);
// backward: two products of the same size (da, db), reading dy, a, b and writing da, db.
Cost matmul_cost(const Case& c) {
  const double a = double(c.batch) * c.m * c.k, b = double(c.shared_b ? 1 : c.batch) * c.k * c.n,
               y = double(c.batch) * c.m * c.n;
  return {4 * (a + b + y), 2 * y * c.k, 4 * 2 * (a + b + y), 4 * y * c.k};
}

CaseSpec matmul_case(const Case& c) {
  const std::string name = "matmul b" + std::to_string(c.batch) + " m" + std::to_string(c.m) + " n" +
                           std::to_string(c.n) + " k" + std::to_string(c.k) + (c.ta ? " ta" : "") +
                           (c.tb ? " tb" : "") + (c.bias ? " bias" : "") + (c.shared_b ? " shared" : "");
  return {name, [c] {
            const int64_t ar = c.ta ? c.k : c.m, ac = c.ta ? c.m : c.k;
            const int64_t br = c.tb ? c.n : c.k, bc = c.tb ? c.k : c.n;
            const int64_t bb = c.shared_b ? 1 : c.batch;
            auto shape3 = [&](int64_t b, int64_t r, int64_t cc, bool two_d) {
              return (c.batch == 1 || two_d) ? Shape{r, cc} : Shape{b, r, cc};
            };
            const ref::MatmulDims s{c.batch, c.m, c.n, c.k, c.ta, c.tb, c.shared_b};
            OpCase o;
            o.inputs = {{shape3(c.batch, ar, ac, false), randn(c.batch * ar * ac, 11)},
                        {shape3(bb, br, bc, c.shared_b), randn(bb * br * bc, 12)}};
            if (c.bias) o.inputs.push_back({Shape{c.n}, randn(c.n, 13)});
            o.device = [c](auto& t) { return ops::matmul(t[0], t[1], c.ta, c.tb, c.bias ? t[2] : Tensor()); };
            o.ref = [s, c](auto& x) { return ref::matmul(s, x[0], x[1], c.bias ? x[2] : Vec{}); };
            o.ref_grad = [s, c](auto& x, const Vec& d) {
              auto g = zeros_like(x);
              ref::matmul_bwd(s, x[0], x[1], d, g[0], g[1], c.bias ? &g[2] : nullptr);
              return g;
            };
            const double k_atol = 1e-5 * std::sqrt(double(std::max(c.k, std::max(c.m, c.n))));
            o.tol = Tolerance{.fwd_rtol = 1e-5, .fwd_atol = k_atol, .grad_rtol = 1e-5, .grad_atol = k_atol};
            o.sizes = {{"batch", c.batch}, {"m", c.m}, {"n", c.n}, {"k", c.k}, {"ta", c.ta}, {"tb", c.tb},
                       {"bias", c.bias}, {"shared_b", c.shared_b}};
            o.cost = matmul_cost(c);
            return o;
          }};
}

std::vector<CaseSpec> test_cases() {
  std::vector<CaseSpec> v;
  // every transpose combination
  for (bool ta : {false, true})
    for (bool tb : {false, true}) v.push_back(matmul_case({1, 13, 17, 19, ta, tb, false, false}));
  // One row takes the matrix-vector path (GEMV; decoding one sequence); a few rows, GEMM.
  for (int64_t m : {1, 3, 8})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) v.push_back(matmul_case({1, m, 37, 29, ta, tb, false, false}));
  v.push_back(matmul_case({1, 1, 41, 23, false, true, true, false}));  // linear's shape, with bias
  v.push_back(matmul_case({5, 1, 11, 7, false, true, false, true}));   // batched input, shared weight: 5 rows
  v.push_back(matmul_case({1, 33, 7, 65, false, true, true, false}));  // bias
  // strided batched, every transpose
  for (bool ta : {false, true})
    for (bool tb : {false, true}) v.push_back(matmul_case({3, 9, 11, 5, ta, tb, false, false}));
  // a batched input with a shared weight, like linear
  v.push_back(matmul_case({4, 7, 10, 6, false, true, true, true}));
  v.push_back(matmul_case({2, 5, 3, 8, false, false, false, true}));
  return v;
}

const RegisterOp reg{{"matmul", test_cases(), matmul_case({1, 8 * 512, 768, 768, false, true, true, false})}};

}  // namespace

TEST(Matmul, MismatchedShapesAreAClearError) {
  Tensor a = upload(Shape{4, 5}, randn(20, 1)), b = upload(Shape{6, 3}, randn(18, 2));
  EXPECT_THROW(ops::matmul(a, b), magellano::Error);
  try {
    ops::matmul(a, b);
  } catch (const magellano::Error& e) {
    EXPECT_NE(std::string(e.what()).find("inner dimensions differ"), std::string::npos) << e.what();
  }
}
