// See gemm_check.hpp.
#include "gemm_check.hpp"

#include <cmath>

#include "harness.hpp"
#include "reference.hpp"
#include "magellano/ops/matmul.hpp"
#include "magellano/ops/matrix_engine.hpp"

namespace mgtest {

namespace ops = magellano::ops;
using magellano::ComputeDType;

std::string name_of(const GemmCase& c) {
  return "b" + std::to_string(c.batch) + " m" + std::to_string(c.m) + " n" + std::to_string(c.n) +
         " k" + std::to_string(c.k) + (c.ta ? " ta" : "") + (c.tb ? " tb" : "") +
         (c.shared_b ? " shared" : "") + " alpha " + std::to_string(c.alpha) + " beta " +
         std::to_string(c.beta);
}

void check_gemm(const GemmCase& c, uint64_t seed, ComputeDType rounding, const GemmFn& product) {
  Context& ctx = test_ctx();
  const int64_t ar = c.ta ? c.k : c.m, ac = c.ta ? c.m : c.k;
  const int64_t br = c.tb ? c.n : c.k, bc = c.tb ? c.k : c.n;
  const int64_t bb = c.shared_b ? 1 : c.batch;
  const Vec a = randn(c.batch * ar * ac, seed), b = randn(bb * br * bc, seed + 1);
  const Vec c0 = randn(c.batch * c.m * c.n, seed + 2);
  const int64_t pad = c.pad;  // leading elements before each operand
  auto padded = [&](const Vec& v) {
    Vec p(pad, 0.0);
    p.insert(p.end(), v.begin(), v.end());
    return p;
  };
  auto view = [&](const Tensor& whole, int64_t n, const Shape& s) {
    return whole.narrow_rows(pad, pad + n).view(s);
  };
  Tensor ta_ = upload(Shape{pad + int64_t(a.size())}, padded(a));
  Tensor tb_ = upload(Shape{pad + int64_t(b.size())}, padded(b));
  Tensor tc_ = c.beta == 0.0f ? Tensor::empty(ctx, Shape{pad + int64_t(c0.size())})  // NaN poison
                              : upload(Shape{pad + int64_t(c0.size())}, padded(c0));
  const Tensor A = view(ta_, a.size(), c.batch == 1 ? Shape{ar, ac} : Shape{c.batch, ar, ac});
  const Tensor B = view(tb_, b.size(), bb == 1 ? Shape{br, bc} : Shape{bb, br, bc});
  const Tensor C = view(tc_, c0.size(), c.batch == 1 ? Shape{c.m, c.n} : Shape{c.batch, c.m, c.n});
  if (product) product(A, c.ta, B, c.tb, C, c.alpha, c.beta);
  else ops::gemm(A, c.ta, B, c.tb, C, c.alpha, c.beta);
  const std::vector<float> got = C.to_host();
  const double u = std::ldexp(1.0, -24);
  // The float64 product (ref::matmul), and the same of |a| and |b|: sum_k |a_ik b_kj|.
  const ref::MatmulDims dims{c.batch, c.m, c.n, c.k, c.ta, c.tb, c.shared_b};
  auto abs_of = [](Vec v) {
    for (auto& x : v) x = std::fabs(x);
    return v;
  };
  auto rounded = [rounding](Vec v) {
    if (rounding != ComputeDType::fp32)
      for (auto& x : v) x = ops::round_operand(float(x), rounding);
    return v;
  };
  const Vec ra = rounded(a), rb = rounded(b);
  const Vec prod = ref::matmul(dims, ra, rb), mags = ref::matmul(dims, abs_of(ra), abs_of(rb));
  for (int64_t p = 0; p < c.batch; ++p)
    for (int64_t i = 0; i < c.m; ++i)
      for (int64_t j = 0; j < c.n; ++j) {
        const int64_t at = (p * c.m + i) * c.n + j;
        const double s = prod[at], mag = mags[at];
        const double cin = c.beta == 0.0f ? 0.0 : double(float(c0[at]));
        const double want = c.alpha * s + c.beta * cin;
        const double bound = (c.k + 2) * u * (std::fabs(c.alpha) * mag + std::fabs(c.beta * cin)) + 1e-30;
        const double err = std::fabs(double(got[at]) - want);
        if (!(err <= bound)) {
          ADD_FAILURE() << name_of(c) << ": element (" << p << ", " << i << ", " << j << ") is "
                        << got[at] << ", want " << want << " (bound " << bound << ")";
          return;
        }
      }
  // The padding in front of C is untouched.
  const std::vector<float> whole = tc_.to_host();
  for (int64_t i = 0; i < pad; ++i)
    if (c.beta != 0.0f) EXPECT_EQ(whole[i], 0.0f) << name_of(c) << ": wrote before C";
}

// Around the tile edges of cl/gemm_cpu.cl (MR in 4..8, NR 16, the M blocks) and the 128-wide tiles
// and K steps of the GPU kernels.
const std::vector<std::array<int64_t, 3>> kGemmSizes = {
    {1, 1, 1}, {7, 5, 3}, {63, 65, 17}, {65, 63, 64}, {257, 33, 129}, {16, 130, 1}};

void check_gemm_sizes(uint64_t seed, bool with_batches, ComputeDType rounding_in) {
  for (const auto& [m, n, k] : kGemmSizes)
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        // A single row of a single matrix is a GEMV, fp32 whatever the compute dtype (matmul.cpp).
        const ComputeDType rounding = m == 1 ? ComputeDType::fp32 : rounding_in;
        check_gemm({1, m, n, k, ta, tb, false, 1.0f, 0.0f}, seed += 3, rounding);
        check_gemm({1, m, n, k, ta, tb, false, -0.5f, 0.0f}, seed += 3, rounding);
        check_gemm({1, m, n, k, ta, tb, false, 1.5f, -0.75f}, seed += 3, rounding);
        if (with_batches) {
          check_gemm({3, m, n, k, ta, tb, false, 1.0f, 0.0f}, seed += 3, rounding_in);
          if (!ta) check_gemm({3, m, n, k, ta, tb, true, 0.5f, 1.0f}, seed += 3, rounding_in);
        }
      }
}

}  // namespace mgtest
