// SiLU, softplus, exp and GELU (erf form) against their float64 references (ref::silu, ...).
// Inputs span [-12, 12] so both tails of the sigmoid and softplus's overflow-safe branch are
// exercised. fp32 transcendental functions are accurate to a few ulp, so forward rtol 1e-5 is
// generous by ~10x. Perf size: 8 x 512 rows of 1536 (Mamba's inner width for D = 768).
#include <cmath>

#include "magellano/ops/activation.hpp"
#include "op_case.hpp"
#include "reference.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

namespace {

// One pointwise op: forward reads x and writes y (8 n bytes); backward reads x and dy and
// writes dx (12 n bytes). FLOPs: `flops` per element forward, twice that backward (the
// derivative recomputes the function).
CaseSpec pointwise_case(const std::string& name, magellano::Tensor (*op)(const magellano::Tensor&),
                        double (*f)(double), double (*df)(double), double lo, double hi, const Shape& s,
                        double flops) {
  return {name + " " + dims(s), [=] {
            OpCase c;
            c.inputs = {{s, uniform(s.numel(), 42, lo, hi)}};
            c.device = [op](auto& t) { return op(t[0]); };
            c.ref = [f](auto& x) { return ref::pointwise(x[0], f); };
            c.ref_grad = [df](auto& x, const Vec& d) {
              auto g = zeros_like(x);
              ref::pointwise_bwd(x[0], df, d, g[0]);
              return g;
            };
            c.tol = Tolerance{.fwd_rtol = 1e-5, .fwd_atol = 1e-6, .grad_rtol = 1e-4, .grad_atol = 1e-6,
                              .fd_rtol = 1e-5, .fd_atol = 1e-6};
            const double n = double(s.numel());
            c.sizes = {{"x", dims(s)}};
            c.cost = {8 * n, flops * n, 12 * n, 2 * flops * n};
            return c;
          }};
}

const Shape kTest{7, 3, 41}, kPerf{8 * 512, 1536};

// FLOPs per element, counting a transcendental function as one: silu x / (1 + exp(-x)) 3,
// softplus 2, exp 1, gelu 0.5 x (1 + erf(x k)) 4.
RegisteredOp pointwise_op(const std::string& name, magellano::Tensor (*op)(const magellano::Tensor&),
                          double (*f)(double), double (*df)(double), double lo, double hi, double flops) {
  return {name, {pointwise_case(name, op, f, df, lo, hi, kTest, flops)},
          pointwise_case(name, op, f, df, lo, hi, kPerf, flops)};
}

const RegisterOp reg_silu{pointwise_op("silu", ops::silu, ref::silu, ref::silu_grad, -12, 12, 3)};
const RegisterOp reg_softplus{pointwise_op("softplus", ops::softplus, ref::softplus, ref::sigmoid, -12, 12, 2)};
const RegisterOp reg_exp{pointwise_op("exp", ops::exp, ref::exponential, ref::exponential, -6, 6, 1)};
const RegisterOp reg_gelu{pointwise_op("gelu", ops::gelu, ref::gelu, ref::gelu_grad, -12, 12, 4)};

}  // namespace

TEST(Activation, SoftplusDoesNotOverflow) {
  Tensor x = upload(Shape{3}, Vec{100.0, -100.0, 0.0});
  auto y = ops::softplus(x).to_host();
  EXPECT_FLOAT_EQ(y[0], 100.0f);
  EXPECT_NEAR(y[1], std::exp(-100.0), 1e-30);
  EXPECT_FLOAT_EQ(y[2], static_cast<float>(std::log(2.0)));
}
