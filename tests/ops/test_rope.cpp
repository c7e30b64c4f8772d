// Rotary positions (ops::rope, NeoX pairing) against float64 (ref::rope: the angle pos ·
// theta^(-2i/d) and its sin / cos in double), forward and the gradient (the inverse rotation):
// registered op cases (both kernel mappings: Ops/ and OtherMapping/); the accuracy at position
// 32,768 with theta 1e6 against what a plain fp32 angle would give; bad input. Perf size: a query
// projection's output, B 8, L 2048, 16 heads, d 64.
// Tolerances (fp32 against float64):
//   forward and gradient rtol 1e-5, atol 3e-6: each output is x1·cos - x2·sin with |x| ~ 1 (up to
//   ~4); the angle is exact to ~2^-25 turns (~2e-7 rad) at any position below 2^24 (see
//   cl/rope.cl) and cospi / sinpi add a few ulp. Measured worst at positions 32,760..32,775,
//   theta 1e6, d 128 (LongPositionsStayAccurate, PoCL): 5.6e-7; a plain fp32 angle: 2.8e-3.
//   reference vs finite differences rtol 1e-6, atol 1e-7 (the map is linear in x).
#include <cmath>
#include <numbers>

#include "error_text.hpp"
#include "magellano/ops/rope.hpp"
#include "op_case.hpp"
#include "reference.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

namespace {

struct Case {
  int64_t b, l, heads, d;
  double theta = 10000.0;
  int64_t start = 0;
  uint64_t seed = 400;
};

const Tolerance kTol{.fwd_rtol = 1e-5, .fwd_atol = 3e-6, .grad_rtol = 1e-5, .grad_atol = 3e-6,
                     .fd_rtol = 1e-6, .fd_atol = 1e-7};

CaseSpec rope_case(const Case& c) {
  std::string name = "rope B" + std::to_string(c.b) + " L" + std::to_string(c.l) + " heads" +
                     std::to_string(c.heads) + " d" + std::to_string(c.d) + " theta" +
                     std::to_string(static_cast<int64_t>(c.theta)) + " start" + std::to_string(c.start);
  return {name, [c] {
            OpCase oc;
            const Shape s{c.b, c.l, c.heads, c.d};
            oc.inputs = {{s, randn(s.numel(), c.seed)}};
            oc.device = [c](const std::vector<Tensor>& t) {
              return ops::rope(t[0], {.theta = c.theta, .start = c.start});
            };
            oc.ref = [c](const std::vector<Vec>& x) { return ref::rope(x[0], c.b, c.l, c.heads, c.d, c.theta, c.start); };
            oc.ref_grad = [c](const std::vector<Vec>&, const Vec& dy) {
              return std::vector<Vec>{ref::rope(dy, c.b, c.l, c.heads, c.d, c.theta, c.start, true)};
            };
            oc.tol = kTol;
            oc.sizes = {{"B", c.b}, {"L", c.l}, {"heads", c.heads}, {"d", c.d}};
            // Per element: read, write, 3 FLOPs (two products and a sum); the angles are not counted.
            const double n = double(s.numel());
            oc.cost = {8 * n, 3 * n, 8 * n, 3 * n};
            return oc;
          }};
}

const RegisterOp reg{{"rope",
                      {
                          rope_case({2, 7, 3, 8}),
                          rope_case({1, 33, 2, 64, 10000.0, 5}),
                          rope_case({2, 5, 2, 6}),                       // d/2 odd: no vectors
                          rope_case({1, 9, 2, 128, 1e6, 32760}),         // long-context positions
                          rope_case({1, 4, 1, 80, 500000.0, 1000000}),  // decoding far out
                      },
                      rope_case({8, 2048, 16, 64})}};

}  // namespace

// At position ~32,768 with theta 1e6 the device stays within a few 1e-7 of float64, where a plain
// fp32 angle (float(pos) · float(inv_freq), then sinf / cosf) is off by ~1e-3.
TEST(Rope, LongPositionsStayAccurate) {
  const int64_t b = 1, l = 16, heads = 2, d = 128, start = 32760;
  const double theta = 1e6;
  const Vec x = randn(b * l * heads * d, 41);
  const Vec want = ref::rope(x, b, l, heads, d, theta, start);
  const std::vector<float> got = ops::rope(upload(Shape{b, l, heads, d}, x), {.theta = theta, .start = start}).to_host();
  double device_err = 0, naive_err = 0;
  for (int64_t r = 0; r < b * l * heads; ++r) {
    const float pos = float(start + (r / heads) % l);
    for (int64_t i = 0; i < d / 2; ++i) {
      const float inv_freq = float(std::pow(theta, -2.0 * double(i) / double(d)));
      const float angle = pos * inv_freq, x1 = float(x[r * d + i]), x2 = float(x[r * d + d / 2 + i]);
      const double naive = double(x1 * std::cos(angle) - x2 * std::sin(angle));
      naive_err = std::max(naive_err, std::fabs(naive - want[r * d + i]));
    }
  }
  for (size_t i = 0; i < got.size(); ++i) device_err = std::max(device_err, std::fabs(got[i] - want[i]));
  std::printf("rope at positions %lld..%lld, theta 1e6, d 128: device max error %.2e, plain fp32 angle %.2e\n",
              static_cast<long long>(start), static_cast<long long>(start + l - 1), device_err, naive_err);
  EXPECT_LT(device_err, 3e-6);
  EXPECT_GT(naive_err, 1e-4);  // the problem the accurate angle solves is real
}

TEST(Rope, BadInputIsOneClearError) {
  using mgtest::expect_error;
  const Tensor x = upload(Shape{1, 4, 2, 6}, Vec(48, 0.5));
  expect_error([&] { ops::rope(upload(Shape{1, 4, 2, 5}, Vec(40, 0.5))); }, "d = 5 must be even");
  expect_error([&] { ops::rope(x.view(Shape{4, 2, 6})); }, "x must be (B, L, heads, d)");
  expect_error([&] { ops::rope(x, {.start = -1}); }, "must lie in [0, 2^24)");
  expect_error([&] { ops::rope(x, {.start = (int64_t(1) << 24) - 2}); }, "must lie in [0, 2^24)");
  expect_error([&] { ops::rope(x, {.theta = 0.0}); }, "theta must be a finite positive number");
}
