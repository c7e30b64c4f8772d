// SiLU, softplus, exp and GELU (erf form) against float64 references. Inputs span [-12, 12] so both tails of
// the sigmoid and softplus's overflow-safe branch are exercised. fp32 transcendental functions
// are accurate to a few ulp, so forward rtol 1e-5 is generous by ~10x.
#include <cmath>

#include "harness.hpp"
#include "magellano/ops/activation.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

namespace {
double sig(double x) { return 1.0 / (1.0 + std::exp(-x)); }

template <typename F, typename G>
void pointwise(const char* name, magellano::Tensor (*op)(const magellano::Tensor&), F f, G df,
               double lo, double hi) {
  const Shape s{7, 3, 41};
  check_op(name, {{s, uniform(s.numel(), 42, lo, hi)}},
           [op](auto& t) { return op(t[0]); },
           [f](auto& x) { Vec y(x[0].size()); for (size_t i = 0; i < y.size(); ++i) y[i] = f(x[0][i]); return y; },
           [df](auto& x, const Vec& d) { Vec g(d.size()); for (size_t i = 0; i < d.size(); ++i) g[i] = d[i] * df(x[0][i]); return std::vector<Vec>{g}; },
           Tolerance{.fwd_rtol = 1e-5, .fwd_atol = 1e-6, .grad_rtol = 1e-4, .grad_atol = 1e-6,
                     .fd_rtol = 1e-5, .fd_atol = 1e-6});
}
}  // namespace

TEST(Activation, Silu) {
  pointwise("silu", ops::silu, [](double x) { return x * sig(x); },
            [](double x) { double s = sig(x); return s * (1 + x * (1 - s)); }, -12, 12);
}

TEST(Activation, Softplus) {
  pointwise("softplus", ops::softplus, [](double x) { return std::log1p(std::exp(x)); }, sig, -12, 12);
}

TEST(Activation, Exp) {
  pointwise("exp", ops::exp, [](double x) { return std::exp(x); },
            [](double x) { return std::exp(x); }, -6, 6);
}

TEST(Activation, GeluErf) {
  const double k = 1.0 / std::sqrt(2.0), c = 1.0 / std::sqrt(2.0 * M_PI);
  pointwise("gelu", ops::gelu, [k](double x) { return 0.5 * x * (1 + std::erf(x * k)); },
            [k, c](double x) { return 0.5 * (1 + std::erf(x * k)) + x * c * std::exp(-0.5 * x * x); },
            -12, 12);
}

TEST(Activation, SoftplusDoesNotOverflow) {
  Tensor x = upload(Shape{3}, Vec{100.0, -100.0, 0.0});
  auto y = ops::softplus(x).to_host();
  EXPECT_FLOAT_EQ(y[0], 100.0f);
  EXPECT_NEAR(y[1], std::exp(-100.0), 1e-30);
  EXPECT_FLOAT_EQ(y[2], static_cast<float>(std::log(2.0)));
}
