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
#include <algorithm>
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

// GLM's 2D rotary (ops::rope_2d) against ref::rope_2d, which rotates each half by its own id in
// float64 (written separately from ref::rope); ids drawn per token: position ids up to 5000, block
// ids 0..7 (as part A's 0 and part B's 1..span + 1). Same tolerances as rope (the same rotation
// per half). d/4 = 1, 3 (no vectors) and 16.
struct Case2d {
  int64_t b, l, heads, d;
  double theta = 10000.0;
  uint64_t seed = 500;
};

double max_abs_diff(const std::vector<float>& a, const Vec& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(double(a[i]) - b[i]));
  return m;
}

std::vector<int32_t> ids_2d(int64_t tokens, uint64_t seed) {
  std::vector<int32_t> ids(2 * tokens);
  uint64_t s = seed;
  for (int64_t t = 0; t < tokens; ++t) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    ids[2 * t] = static_cast<int32_t>((s >> 33) % 5000);
    ids[2 * t + 1] = static_cast<int32_t>((s >> 20) % 8);
  }
  return ids;
}

CaseSpec rope_2d_case(const Case2d& c) {
  std::string name = "rope_2d B" + std::to_string(c.b) + " L" + std::to_string(c.l) + " heads" +
                     std::to_string(c.heads) + " d" + std::to_string(c.d);
  return {name, [c] {
            OpCase oc;
            const Shape s{c.b, c.l, c.heads, c.d};
            const std::vector<int32_t> ids = ids_2d(c.b * c.l, c.seed);
            oc.inputs = {{s, randn(s.numel(), c.seed)}};
            oc.device = [c, ids](const std::vector<Tensor>& t) {
              return ops::rope_2d(t[0], upload_i32(Shape{c.b, c.l, 2}, ids), c.theta);
            };
            oc.ref = [c, ids](const std::vector<Vec>& x) { return ref::rope_2d(x[0], ids, c.b, c.l, c.heads, c.d, c.theta); };
            oc.ref_grad = [c, ids](const std::vector<Vec>&, const Vec& dy) {
              return std::vector<Vec>{ref::rope_2d(dy, ids, c.b, c.l, c.heads, c.d, c.theta, true)};
            };
            oc.tol = kTol;
            oc.sizes = {{"B", c.b}, {"L", c.l}, {"heads", c.heads}, {"d", c.d}};
            const double n = double(s.numel());
            oc.cost = {8 * n, 3 * n, 8 * n, 3 * n};
            return oc;
          }};
}

const RegisterOp reg_2d{{"rope_2d",
                         {
                             rope_2d_case({2, 7, 3, 4}),
                             rope_2d_case({1, 13, 2, 12}),
                             rope_2d_case({2, 5, 4, 64}),
                         },
                         rope_2d_case({8, 512, 16, 64})}};

}  // namespace

// rope_2d is what GLM's scheme says and not something near it: ids (t, 0) equal rope() on the
// first halves alone (as a (B, L, 2·heads, d/2) tensor) with the second halves untouched;
// rope_2d_at with first[b] is rope_2d with ids (first[b] + t, 0); a reference that swaps the two
// ids (or rotates whole heads by the position id) is far from the device (> 0.1).
TEST(Rope, TwoDimensionalIdsAreHalvesOfOrdinaryRope) {
  const int64_t b = 2, l = 6, heads = 3, d = 16;
  const Vec x = randn(b * l * heads * d, 77);
  std::vector<int32_t> seq(2 * b * l), first{3, 9}, at(2 * b * l);
  for (int64_t t = 0; t < b * l; ++t) seq[2 * t] = static_cast<int32_t>(t % l), seq[2 * t + 1] = 0;
  for (int64_t t = 0; t < b * l; ++t) at[2 * t] = first[t / l] + static_cast<int32_t>(t % l), at[2 * t + 1] = 0;
  const Tensor xt = upload(Shape{b, l, heads, d}, x);
  const std::vector<float> two = ops::rope_2d(xt, upload_i32(Shape{b, l, 2}, seq), 10000.0).to_host();
  const std::vector<float> plain = ops::rope(xt.view(Shape{b, l, 2 * heads, d / 2}), {.theta = 10000.0}).to_host();
  for (int64_t r = 0; r < b * l * heads; ++r)
    for (int64_t i = 0; i < d; ++i) {
      const float want = i < d / 2 ? plain[r * d + i] : static_cast<float>(x[r * d + i]);
      ASSERT_EQ(two[r * d + i], want) << "row " << r << ", element " << i;
    }
  const std::vector<float> shifted = ops::rope_2d_at(xt, upload_i32(Shape{b}, first), 10000.0).to_host();
  EXPECT_EQ(shifted, ops::rope_2d(xt, upload_i32(Shape{b, l, 2}, at), 10000.0).to_host());
  const std::vector<int32_t> ids = ids_2d(b * l, 9);
  std::vector<int32_t> swapped(ids.size());
  for (size_t t = 0; t < ids.size(); t += 2) swapped[t] = ids[t + 1], swapped[t + 1] = ids[t];
  const std::vector<float> got = ops::rope_2d(xt, upload_i32(Shape{b, l, 2}, ids), 10000.0).to_host();
  EXPECT_LT(max_abs_diff(got, ref::rope_2d(x, ids, b, l, heads, d, 10000.0)), 3e-6);
  EXPECT_GT(max_abs_diff(got, ref::rope_2d(x, swapped, b, l, heads, d, 10000.0)), 0.1);
}

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
  expect_error([&] { ops::rope_2d(x, upload_i32(Shape{1, 4, 2}, std::vector<int32_t>(8, 0)), 1e4); },
               "d = 6 must be a multiple of 4");
  const Tensor x8 = upload(Shape{1, 4, 2, 8}, Vec(64, 0.5));
  expect_error([&] { ops::rope_2d(x8, upload_i32(Shape{1, 4}, std::vector<int32_t>(4, 0)), 1e4); },
               "the ids must be (1, 4, 2) i32");
  expect_error([&] { ops::rope_2d_at(x8, upload_i32(Shape{2}, {0, 0}), 1e4); }, "the ids must be (1) i32");
}
