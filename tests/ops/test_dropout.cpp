// dropout (inverted, counter-based mask) against the float64 reference (ref::dropout: the mask
// is the kernel's hash, ops::dropout_keeps; the scaling float64), forward and backward (the
// backward regenerates the same mask). Perf size: 8 x 512 rows of 768.
// Tolerances: one fp32 multiply by the fp32 1 / (1 - p) per element: check_op's defaults
// (forward rtol 1e-5, gradients 1e-4) hold with room.
#include <cmath>

#include "magellano/ops/dropout.hpp"
#include "op_case.hpp"
#include "reference.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

namespace {

// Each way reads n values and writes n (8 n bytes), one multiply a value.
CaseSpec dropout_case(const Shape& s, float p, uint64_t seed) {
  return {"dropout " + dims(s) + " p" + std::to_string(std::lround(p * 100)), [=] {
            OpCase c;
            c.inputs = {{s, randn(s.numel(), seed)}};
            c.device = [p, seed](auto& t) { return ops::dropout(t[0], p, seed); };
            c.ref = [p, seed](auto& x) { return ref::dropout(x[0], p, seed); };
            c.ref_grad = [p, seed](auto& x, const Vec& dy) {
              auto g = zeros_like(x);
              ref::dropout_bwd(p, seed, dy, g[0]);
              return g;
            };
            const double n = double(s.numel());
            c.sizes = {{"x", dims(s)}, {"p", std::lround(p * 100) / 100.0}};
            c.cost = {8 * n, n, 8 * n, n};
            return c;
          }};
}

const RegisterOp reg{{"dropout",
                      {dropout_case(Shape{7, 33}, 0.3f, 5), dropout_case(Shape{3, 5, 17}, 0.9f, 11),
                       dropout_case(Shape{1001}, 0.5f, 1ull << 40)},
                      dropout_case(Shape{8 * 512, 768}, 0.1f, 7)}};

}  // namespace

TEST(Dropout, KeepsAboutOneMinusP) {
  // The mask's keep rate: 100,000 draws at p = 0.3 keep 70% within 5 standard deviations.
  int64_t kept = 0;
  for (uint64_t i = 0; i < 100000; ++i) kept += ops::dropout_keeps(17, i, 0.3f);
  EXPECT_NEAR(double(kept) / 100000, 0.7, 5 * std::sqrt(0.21 / 100000));
}
