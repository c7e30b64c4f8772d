// cross_entropy against the float64 reference (ref::cross_entropy): ignored rows, out-of-range
// targets, all rows ignored, a single row, odd vocabularies (V = 1, 3, 257, 5003: none a
// multiple of the work-group size), large-magnitude logits (|x| ~ 80, beyond what exp()
// without the row maximum subtracted survives) and (B, L, V) logits; perf size: 512 rows of
// GPT-2's vocabulary (50,257).
// Tolerances: the loss is a mean of lse - x[t], where lse = m + log(V-term tree sum) carries a
// relative error of a few 2^-24 (< 1e-6 for these V): forward rtol 1e-5, atol 1e-6. With logits
// ~ ±80 the subtraction lse - x[t] of two numbers ~80 loses about 80 * 2^-24 ~ 5e-6 absolute:
// atol 2e-5 there. Gradients are (p - onehot) * dloss / count, p = exp(x - lse) (a few ulp,
// plus |x - lse| * 2^-24 relative from the subtraction): rtol 1e-4, atol 1e-6 (the harness's
// 1e-5 would hide errors in the small probabilities of wide rows).
#include <climits>
#include <cmath>

#include "magellano/ops/cross_entropy.hpp"
#include "op_case.hpp"
#include "reference.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

namespace {

// Random targets in [0, v), with every `ignore_every`-th row set to `ignore`.
Vec targets(size_t n, size_t v, uint64_t seed, size_t ignore_every, int ignore) {
  Vec t = uniform(n, seed, 0.0, double(v));
  for (size_t i = 0; i < n; ++i) {
    t[i] = std::min(std::floor(t[i]), double(v - 1));
    if (ignore_every && i % ignore_every == ignore_every - 1) t[i] = ignore;
  }
  return t;
}

// Forward reads the logits and targets (4 (N V + N) bytes), ~3 N V FLOPs (max, exp, sum);
// backward reads them again and writes dx: 4 (2 N V + N) bytes, ~3 N V FLOPs.
Cost cross_entropy_cost(double n, double v) { return {4 * (n * v + n), 3 * n * v, 4 * (2 * n * v + n), 3 * n * v}; }

// Logits of `xs` ((N, V) or (B, L, V)) and targets of `ts`, made when the case runs.
CaseSpec ce_case(const std::string& what, const Shape& xs, const Shape& ts, std::function<Vec()> x,
                 std::function<Vec()> t, int ignore = -100, double fwd_atol = 1e-6, double fd_atol = 1e-7) {
  return {"cross_entropy " + dims(xs) + (what.empty() ? "" : " " + what), [=] {
            const int64_t v = xs.last(), n = xs.numel() / v;
            OpCase c;
            c.inputs = {{xs, x()}, {ts, t(), false, DType::i32}};
            c.device = [ignore](auto& in) { return ops::cross_entropy(in[0], in[1], ignore); };
            c.ref = [v, ignore](auto& in) { return ref::cross_entropy(in[0], in[1], v, ignore); };
            c.ref_grad = [v, ignore](auto& in, const Vec& d) {
              auto g = zeros_like(in);
              ref::cross_entropy_bwd(in[0], in[1], v, ignore, d, g[0]);
              return g;
            };
            c.tol = Tolerance{.fwd_rtol = 1e-5, .fwd_atol = fwd_atol, .grad_rtol = 1e-4, .grad_atol = 1e-6,
                              .fd_rtol = 1e-5, .fd_atol = fd_atol};
            c.sizes = {{"N", n}, {"V", v}};
            c.cost = cross_entropy_cost(double(n), double(v));
            return c;
          }};
}

CaseSpec ce_case(const std::string& what, size_t n, size_t v, std::function<Vec()> x, std::function<Vec()> t,
                 int ignore = -100, double fwd_atol = 1e-6, double fd_atol = 1e-7) {
  return ce_case(what, Shape{int64_t(n), int64_t(v)}, Shape{int64_t(n)}, x, t, ignore, fwd_atol, fd_atol);
}

Vec dominant_logits() {
  Vec x = randn(3 * 33, 12);
  x[0 * 33 + 5] = 95.0;   // dominant logit, the target of row 0: loss ~ 0
  x[1 * 33 + 7] = 95.0;   // dominant logit, not the target of row 1: loss ~ 95
  x[2 * 33 + 9] = -95.0;  // tiny logit as the target of row 2
  return x;
}

// Documented behaviour: a target that is neither ignore_index nor in [0, V) counts as ignored
// on the device; check_targets() reports it as an error where a read-back is affordable.
Vec out_of_range_targets() {
  Vec t = targets(8, 13, 16, 0, -100);
  t[1] = 13;          // == V
  t[3] = -1;          // negative, not the ignore index
  t[5] = INT_MAX;
  t[6] = INT_MIN;
  return t;
}

const RegisterOp reg{{"cross_entropy",
                      {// odd sizes with ignored rows
                       ce_case("", 1, 3, [] { return randn(3, 1); }, [] { return Vec{2}; }),
                       ce_case("", 7, 1, [] { return randn(7, 2); },  // V = 1: loss 0, gradient 0
                               [] { return targets(7, 1, 3, 3, -100); }),
                       ce_case("", 7, 3, [] { return randn(21, 4); }, [] { return targets(7, 3, 5, 3, -100); }),
                       ce_case("", 33, 257, [] { return randn(33 * 257, 6, 2.0); },
                               [] { return targets(33, 257, 7, 4, -100); }),
                       // a large vocabulary
                       ce_case("", 5, 5003, [] { return randn(5 * 5003, 8, 3.0); },
                               [] { return targets(5, 5003, 9, 4, -100); }),
                       // Large-magnitude logits: logits uniform in [-80, 80]: exp(80) ~ 5.5e34, and
                       // a sum of many of them overflows fp32 unless the row maximum is
                       // subtracted. Reference finite differences use a step relative to |x| ~ 80:
                       // fd_atol 1e-6.
                       ce_case("pm80", 7, 257, [] { return uniform(7 * 257, 10, -80.0, 80.0); },
                               [] { return targets(7, 257, 11, 3, -100); }, -100, 2e-5, 1e-6),
                       ce_case("dominant", 3, 33, dominant_logits, [] { return Vec{5, 8, 9}; }, -100, 2e-5, 1e-6),
                       // ignore_index 0: target 0 rows are ignored
                       ce_case("ignore 0", 9, 17, [] { return randn(9 * 17, 14); },
                               [] { return targets(9, 17, 13, 2, 0); }, 0),
                       // every row ignored: zero loss and gradient
                       ce_case("all ignored", 6, 11, [] { return randn(66, 15); }, [] { return Vec(6, -100.0); }),
                       ce_case("out of range", 8, 13, [] { return randn(8 * 13, 17); }, out_of_range_targets),
                       // (B, L, V) logits with (B, L) targets: the same as (B*L, V) with (B*L)
                       ce_case("batched", Shape{2, 5, 29}, Shape{2, 5}, [] { return randn(2 * 5 * 29, 18); },
                               [] { return targets(10, 29, 19, 4, -100); })},
                      ce_case("", 512, 50257, [] { return randn(512 * 50257, 22, 2.0); },
                              [] { return targets(512, 50257, 23, 0, -100); })}};

}  // namespace

TEST(CrossEntropy, OutOfRangeTargetsAreTreatedAsIgnored) {
  // The device side is the registered case "cross_entropy 8x13 out of range"; here the host check.
  const Vec t = out_of_range_targets();
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
