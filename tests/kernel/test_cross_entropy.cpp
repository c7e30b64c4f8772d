// cross_entropy against a float64 reference: ignored rows, out-of-range targets, all rows
// ignored, a single row, odd vocabularies (V = 1, 3, 257, 5003: none a multiple of the
// work-group size) and large-magnitude logits (|x| ~ 80, beyond what exp() without the row
// maximum subtracted survives).
// Tolerances: the loss is a mean of lse - x[t], where lse = m + log(V-term tree sum) carries a
// relative error of a few 2^-24 (< 1e-6 for these V): forward rtol 1e-5, atol 1e-6. With logits
// ~ ±80 the subtraction lse - x[t] of two numbers ~80 loses about 80 * 2^-24 ~ 5e-6 absolute:
// atol 2e-5 there. Gradients are (p - onehot) * dloss / count, p = exp(x - lse) (a few ulp,
// plus |x - lse| * 2^-24 relative from the subtraction): rtol 1e-4, atol 1e-6 (the harness's
// 1e-5 would hide errors in the small probabilities of wide rows).
#include <climits>
#include <cmath>

#include "harness.hpp"
#include "magellano/ops/cross_entropy.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

namespace {

bool counted(double t, size_t v, int ignore) {
  return t != ignore && t >= 0 && t < double(v);
}

double lse_row(const Vec& x, size_t r, size_t v) {
  double m = -INFINITY, s = 0;
  for (size_t c = 0; c < v; ++c) m = std::max(m, x[r * v + c]);
  for (size_t c = 0; c < v; ++c) s += std::exp(x[r * v + c] - m);
  return m + std::log(s);
}

Vec ref_fwd(const Vec& x, const Vec& t, size_t v, int ignore) {
  double sum = 0;
  size_t count = 0;
  for (size_t r = 0; r < t.size(); ++r) {
    if (!counted(t[r], v, ignore)) continue;
    sum += lse_row(x, r, v) - x[r * v + size_t(t[r])];
    ++count;
  }
  return {count ? sum / double(count) : 0.0};
}

Vec ref_bwd(const Vec& x, const Vec& t, const Vec& dout, size_t v, int ignore) {
  size_t count = 0;
  for (double tr : t) count += counted(tr, v, ignore);
  Vec dx(x.size(), 0.0);
  for (size_t r = 0; r < t.size(); ++r) {
    if (!counted(t[r], v, ignore)) continue;
    const double lse = lse_row(x, r, v);
    for (size_t c = 0; c < v; ++c)
      dx[r * v + c] = (std::exp(x[r * v + c] - lse) - (double(c) == t[r] ? 1.0 : 0.0)) *
                      dout[0] / double(count);
  }
  return dx;
}

// Random targets in [0, v), with every `ignore_every`-th row set to `ignore`.
Vec targets(size_t n, size_t v, uint64_t seed, size_t ignore_every, int ignore) {
  Vec t = uniform(n, seed, 0.0, double(v));
  for (size_t i = 0; i < n; ++i) {
    t[i] = std::min(std::floor(t[i]), double(v - 1));
    if (ignore_every && i % ignore_every == ignore_every - 1) t[i] = ignore;
  }
  return t;
}

void run(const std::string& name, size_t n, size_t v, const Vec& x, const Vec& t,
         int ignore = -100, double fwd_atol = 1e-6, double fd_atol = 1e-7) {
  check_op(name + " N" + std::to_string(n) + " V" + std::to_string(v),
           {{Shape{int64_t(n), int64_t(v)}, x},
            {Shape{int64_t(n)}, t, false, DType::i32}},
           [ignore](auto& in) { return ops::cross_entropy(in[0], in[1], ignore); },
           [v, ignore](auto& in) { return ref_fwd(in[0], in[1], v, ignore); },
           [v, ignore](auto& in, const Vec& d) {
             return std::vector<Vec>{ref_bwd(in[0], in[1], d, v, ignore), Vec{}};
           },
           Tolerance{.fwd_rtol = 1e-5, .fwd_atol = fwd_atol, .grad_rtol = 1e-4, .grad_atol = 1e-6,
                     .fd_rtol = 1e-5, .fd_atol = fd_atol});
}

}  // namespace

TEST(CrossEntropy, OddSizesWithIgnoredRows) {
  run("ce", 1, 3, randn(3, 1), {2});
  run("ce", 7, 1, randn(7, 2), targets(7, 1, 3, 3, -100));  // V = 1: loss 0, gradient 0
  run("ce", 7, 3, randn(21, 4), targets(7, 3, 5, 3, -100));
  run("ce", 33, 257, randn(33 * 257, 6, 2.0), targets(33, 257, 7, 4, -100));
}

TEST(CrossEntropy, LargeVocabulary) {
  run("ce large V", 5, 5003, randn(5 * 5003, 8, 3.0), targets(5, 5003, 9, 4, -100));
}

TEST(CrossEntropy, LargeMagnitudeLogitsAreStable) {
  // Logits uniform in [-80, 80]: exp(80) ~ 5.5e34, and a sum of many of them overflows fp32
  // unless the row maximum is subtracted. Reference finite differences use a step relative to
  // |x| ~ 80: fd_atol 1e-6.
  run("ce ±80", 7, 257, uniform(7 * 257, 10, -80.0, 80.0), targets(7, 257, 11, 3, -100), -100,
      2e-5, 1e-6);
  Vec x = randn(3 * 33, 12);
  x[0 * 33 + 5] = 95.0;   // dominant logit, the target of row 0: loss ~ 0
  x[1 * 33 + 7] = 95.0;   // dominant logit, not the target of row 1: loss ~ 95
  x[2 * 33 + 9] = -95.0;  // tiny logit as the target of row 2
  run("ce dominant", 3, 33, x, {5, 8, 9}, -100, 2e-5, 1e-6);
}

TEST(CrossEntropy, CustomIgnoreIndex) {
  Vec t = targets(9, 17, 13, 2, 0);  // ignore_index 0: target 0 rows are ignored
  run("ce ignore 0", 9, 17, randn(9 * 17, 14), t, 0);
}

TEST(CrossEntropy, EveryRowIgnoredGivesZeroLossAndGradient) {
  run("ce all ignored", 6, 11, randn(66, 15), Vec(6, -100.0));
}

TEST(CrossEntropy, OutOfRangeTargetsAreTreatedAsIgnored) {
  // Documented behaviour: a target that is neither ignore_index nor in [0, V) counts as ignored
  // on the device; check_targets() reports it as an error where a read-back is affordable.
  Vec t = targets(8, 13, 16, 0, -100);
  t[1] = 13;          // == V
  t[3] = -1;          // negative, not the ignore index
  t[5] = INT_MAX;
  t[6] = INT_MIN;
  run("ce out of range", 8, 13, randn(8 * 13, 17), t);
  Tensor bad = upload_i32(Shape{8}, std::vector<int32_t>(t.begin(), t.end()));
  try {
    ops::check_targets(bad, 13);
    FAIL() << "expected an error";
  } catch (const magellano::Error& e) {
    EXPECT_NE(std::string(e.what()).find("target 13 at position 1 is outside the vocabulary [0, 13)"),
              std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(ops::check_targets(upload_i32(Shape{3}, {0, -100, 12}), 13));
}

TEST(CrossEntropy, BatchedLogitsWithMatchingTargets) {
  // (B, L, V) logits with (B, L) targets: the same as (B*L, V) with (B*L).
  const size_t v = 29;
  Vec x = randn(2 * 5 * v, 18), t = targets(10, v, 19, 4, -100);
  check_op("ce (2, 5, 29)", {{Shape{2, 5, int64_t(v)}, x}, {Shape{2, 5}, t, false, DType::i32}},
           [](auto& in) { return ops::cross_entropy(in[0], in[1]); },
           [v](auto& in) { return ref_fwd(in[0], in[1], v, -100); },
           [v](auto& in, const Vec& d) { return std::vector<Vec>{ref_bwd(in[0], in[1], d, v, -100), Vec{}}; },
           Tolerance{.fwd_rtol = 1e-5, .fwd_atol = 1e-6, .grad_rtol = 1e-4, .grad_atol = 1e-6});
}

TEST(CrossEntropy, IsBitwiseDeterministic) {
  const size_t n = 37, v = 1001;
  Tensor x = upload(Shape{int64_t(n), int64_t(v)}, randn(n * v, 20, 4.0), true);
  Vec tv = targets(n, v, 21, 5, -100);
  Tensor t = upload_i32(Shape{int64_t(n)}, std::vector<int32_t>(tv.begin(), tv.end()));
  std::vector<float> loss[2], grad[2];
  for (int k = 0; k < 2; ++k) {
    x.zero_grad();
    Tensor l = ops::cross_entropy(x, t);
    magellano::autograd::backward(l);
    loss[k] = l.to_host();
    grad[k] = x.grad().to_host();
  }
  EXPECT_EQ(loss[0], loss[1]);
  EXPECT_EQ(grad[0], grad[1]);
}

TEST(CrossEntropy, BadShapesAreAClearError) {
  Tensor x = upload(Shape{4, 5}, randn(20, 1));
  auto expect_msg = [](auto&& f, const std::string& msg) {
    try {
      f();
      FAIL() << "expected an error containing: " << msg;
    } catch (const magellano::Error& e) {
      EXPECT_NE(std::string(e.what()).find(msg), std::string::npos) << e.what();
    }
  };
  expect_msg([&] { ops::cross_entropy(x, upload_i32(Shape{3}, {0, 1, 2})); },
             "targets must have shape (4) to match logits (4, 5), got (3)");
  expect_msg([&] { ops::cross_entropy(x, upload(Shape{4}, randn(4, 2))); },
             "'targets' must be i32, got f32");
  expect_msg([&] { ops::cross_entropy(upload(Shape{5}, randn(5, 3)), upload_i32(Shape{1}, {0})); },
             "logits must be (N, V) or (..., V) with V >= 1, got (5)");
  expect_msg([&] { ops::cross_entropy(upload(Shape{2, 3, 5}, randn(30, 4)), upload_i32(Shape{3, 2}, {0, 1, 2, 3, 4, 0})); },
             "targets must have shape (2, 3) (or (6)) to match logits (2, 3, 5), got (3, 2)");
}
