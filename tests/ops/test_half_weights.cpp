// Ops over trainable fp16-stored weights (fp16 parameter storage): ops::linear / half_linear,
// ops::embedding and ops::expert_mlp with f16 weights, and ops::cast of an f16 parameter.
//
// Two kinds of checks:
//  - Against the same op on fp32 weights holding the same (fp16-representable) values, on the
//    same device: the products run on an exact widening of the weights, so outputs and input
//    gradients must be the same bits, and the fp16 weight gradient must be exactly the fp32
//    op's weight gradient rounded to nearest fp16 (one rounding; none in between).
//  - Against float64 references (whose gradients are checked by finite differences): the
//    fp32 tolerances of the op tests for outputs and input gradients, and for the fp16 weight
//    gradient those plus one fp16 rounding, 2^-11 relative (subnormals: half of 2^-24).
// A second backward without zero_grad must double the fp16 gradients: rounding a + b with
// a = fp16(b) gives exactly 2a when 2a is a normal fp16 number (|b - a| is at most a quarter
// of the spacing at 2a), and 2a or a neighbour among subnormals (constant spacing 2^-24).
// The registered op half_linear: x · float(w)ᵀ against ref::linear (output and dx, check_op's
// fp32 defaults; the fp16 dw is compared by the tests below); perf size: a (768, 768) fp16
// weight on 8 x 512 rows.
#include <cmath>
#include <cstring>

#include "op_case.hpp"
#include "reference.hpp"
#include "magellano/io/st_dtype.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/expert_mlp.hpp"
#include "magellano/ops/half_linear.hpp"
#include "magellano/ops/index.hpp"
#include "magellano/ops/matmul.hpp"
#include "magellano/ops/reduce.hpp"

using namespace mgtest;
namespace ops = magellano::ops;
namespace ag = magellano::autograd;
using magellano::MemCategory;

namespace {

float fp16(double x) { return magellano::io::f16_to_f32(magellano::io::f32_to_f16(float(x))); }

// Random values that fp16 holds exactly.
std::vector<float> half_values(size_t n, uint64_t seed, double scale) {
  std::vector<float> v = to_f32(randn(n, seed, scale));
  for (float& x : v) x = fp16(x);
  return v;
}

// A trainable f16 parameter and an f32 one with the same values.
struct Pair {
  Tensor w16, w32;
};
Pair weight_pair(const Shape& s, uint64_t seed, double scale = 0.3) {
  const auto v = half_values(size_t(s.numel()), seed, scale);
  Pair p{Tensor::from_host(test_ctx(), s, v, DType::f16, MemCategory::parameters),
         Tensor::from_host(test_ctx(), s, v, DType::f32, MemCategory::parameters)};
  p.w16.set_requires_grad(true);
  p.w32.set_requires_grad(true);
  return p;
}

std::vector<uint32_t> bits(const std::vector<float>& v) {
  std::vector<uint32_t> b(v.size());
  std::memcpy(b.data(), v.data(), v.size() * 4);
  return b;
}
std::vector<float> rounded(std::vector<float> v) {
  for (float& x : v) x = fp16(x);
  return v;
}
// After a second identical backward: twice the first fp16 gradient (see the top).
void expect_doubled(const std::vector<float>& twice, const std::vector<float>& once, const std::string& what) {
  ASSERT_EQ(twice.size(), once.size()) << what;
  for (size_t i = 0; i < once.size(); ++i) {
    const float want = 2.0f * once[i];
    if (std::fabs(want) >= std::ldexp(1.0f, -14)) ASSERT_EQ(twice[i], want) << what << " [" << i << "]";
    else ASSERT_LE(std::fabs(twice[i] - want), std::ldexp(1.0f, -24)) << what << " [" << i << "]";
  }
}

// |got - want| <= fp32 tolerance + one fp16 rounding, relative to |want|.
void expect_fp16_grad(const std::vector<float>& got, const Vec& want, const std::string& what) {
  expect_close(got, want, 1e-4 + std::ldexp(1.0, -11), 1e-5 + std::ldexp(1.0, -25), what);
}

// x (..., in) · float(w)ᵀ, w (out, in) f16 and trainable: 2 R in out FLOPs forward, twice that
// backward (dw and dx). Bytes: x and y (4 R (in + out)), w read as fp16 (2 a parameter) and
// widened into an fp32 scratch written and read (8); the backward reads dy and x, writes dx,
// computes dw in an fp32 scratch (8) added into the fp16 gradient (2 + 2) and widens w again.
Cost half_linear_cost(double rows, double in, double out) {
  return {4 * rows * (in + out) + 10 * in * out, 2 * rows * in * out,
          4 * rows * (2 * in + out) + 22 * in * out, 4 * rows * in * out};
}

CaseSpec half_linear_case(const Shape& xs, int64_t out, uint64_t seed) {
  const int64_t in = xs.last();
  return {"half_linear " + dims(xs) + " W " + std::to_string(out) + "x" + std::to_string(in), [=] {
            const int64_t rows = xs.numel() / in;
            const std::vector<float> w = half_values(size_t(out * in), seed, 0.3);
            OpCase c;
            c.inputs = {{xs, randn(xs.numel(), seed + 1)}, {Shape{out, in}, to_f64(w), true, DType::f16}};
            c.device = [](const std::vector<Tensor>& t) { return ops::half_linear(t[0], t[1]); };
            c.ref = [=](const std::vector<Vec>& x) { return ref::linear(x[0], rows, in, x[1], out); };
            c.ref_grad = [=](const std::vector<Vec>& x, const Vec& dy) {
              auto g = zeros_like(x);
              ref::linear_bwd(x[0], rows, in, x[1], out, dy, g[0], g[1]);
              return g;
            };
            c.sizes = {{"rows", rows}, {"in", in}, {"out", out}};
            c.cost = half_linear_cost(double(rows), double(in), double(out));
            return c;
          }};
}

const RegisterOp reg{{"half_linear", {half_linear_case(Shape{3, 5, 37}, 29, 31)},
                      half_linear_case(Shape{8 * 512, 768}, 768, 33)}};

}  // namespace

TEST(HalfWeights, LinearMatchesTheF32OpBitForBit) {
  const int64_t rows = 15, in = 37, out = 29;
  Pair w = weight_pair(Shape{out, in}, 1);
  const Vec xv = randn(rows * in, 2), dyv = randn(rows * out, 3);
  Tensor x16 = upload(Shape{3, 5, in}, xv, true), x32 = upload(Shape{3, 5, in}, xv, true);
  const Tensor dy = upload(Shape{3, 5, out}, dyv);
  std::vector<float> first;
  for (int pass = 1; pass <= 2; ++pass) {  // the second backward adds to the first
    // (each backward runs the whole tape: one forward and its backward at a time)
    const Tensor y16 = ops::linear(x16, w.w16);
    const auto out16 = y16.to_host();
    ag::backward(y16, dy);
    const Tensor y32 = ops::linear(x32, w.w32);
    EXPECT_EQ(bits(out16), bits(y32.to_host()));
    ag::backward(y32, dy);
    EXPECT_EQ(bits(x16.grad().to_host()), bits(x32.grad().to_host()));
    if (pass == 1) {
      EXPECT_EQ(w.w16.grad().dtype(), DType::f16);
      first = w.w16.grad().to_host();
      EXPECT_EQ(bits(first), bits(rounded(w.w32.grad().to_host())));
    }
  }
  expect_doubled(w.w16.grad().to_host(), first, "dw after two backwards");
}

TEST(HalfWeights, LinearWithBiasMatchesFloat64) {
  const int64_t m = 15, k = 37, n = 29;
  Pair w = weight_pair(Shape{n, k}, 4);
  const Vec wv = to_f64(w.w32.to_host()), xv = randn(m * k, 5), bv = randn(n, 6), dyv = randn(m * n, 7);
  Tensor x = upload(Shape{m, k}, xv, true), b = upload(Shape{n}, bv, true);
  const Tensor dy = upload(Shape{m, n}, dyv);
  const Tensor y = ops::linear(x, w.w16, b);
  expect_close(y.to_host(), ref::linear(xv, m, k, wv, n, bv), 1e-5, 1e-5, "y");
  ag::backward(y, dy);
  Vec dx(m * k, 0.0), dw(n * k, 0.0), db(n, 0.0);
  ref::linear_bwd(xv, m, k, wv, n, dyv, dx, dw, &db);
  expect_close(x.grad().to_host(), dx, 1e-4, 1e-5, "dx");
  expect_close(b.grad().to_host(), db, 1e-4, 1e-5, "db");
  expect_fp16_grad(w.w16.grad().to_host(), dw, "dw (fp16)");
  // The reference's weight gradient against central differences of its forward.
  const auto f = [&](const Vec& wq) {
    const Vec yq = ref::linear(xv, m, k, wq, n, bv);
    double s = 0;
    for (size_t i = 0; i < yq.size(); ++i) s += yq[i] * dyv[i];
    return s;
  };
  const std::vector<size_t> at = {0, 17, 250, size_t(n * k - 1)};
  const Vec fd = finite_diff(f, wv, at);
  for (size_t i = 0; i < at.size(); ++i) EXPECT_NEAR(fd[i], dw[at[i]], 1e-5 * (1 + std::fabs(dw[at[i]]))) << at[i];
}

TEST(HalfWeights, LinearKeepsNoF32CopyOfTheWeight) {
  // The widened weight is a scratch released before the op returns; the backward saves the
  // f16 handle (and x, for dw), not an fp32 copy.
  Context& ctx = test_ctx();
  Pair w = weight_pair(Shape{301, 257}, 8);
  Tensor x = upload(Shape{4, 257}, randn(4 * 257, 9), true);
  const uint64_t scratch = ctx.memory().current(MemCategory::scratch);
  const Tensor y = ops::linear(x, w.w16);
  EXPECT_EQ(ctx.memory().current(MemCategory::scratch), scratch);
  ag::backward(ops::sum(y));
  EXPECT_EQ(ctx.memory().current(MemCategory::scratch), scratch);
}

TEST(HalfWeights, EmbeddingMatchesTheF32OpAndFloat64) {
  const int64_t V = 23, D = 9;
  Pair w = weight_pair(Shape{V, D}, 10);
  // Repeated ids and rows no id names.
  const std::vector<int32_t> ids = {3, 7, 3, 0, 22, 7, 7, 11, 3, 15, 0, 22, 5, 3, 19, 7, 2, 3, 9, 0, 22, 4, 7,
                                    13, 3, 8, 1, 22, 7, 6, 3, 0, 17};
  const Tensor t = upload_i32(Shape{3, 11}, ids);
  const Vec dyv = randn(ids.size() * D, 11);
  const Tensor dy = upload(Shape{3, 11, D}, dyv);
  const Tensor e16 = ops::embedding(w.w16, t);
  const auto out16 = e16.to_host();
  ag::backward(e16, dy);
  const Tensor e32 = ops::embedding(w.w32, t);
  EXPECT_EQ(bits(out16), bits(e32.to_host()));
  ag::backward(e32, dy);
  EXPECT_EQ(w.w16.grad().dtype(), DType::f16);
  EXPECT_EQ(bits(w.w16.grad().to_host()), bits(rounded(w.w32.grad().to_host())));
  // float64: dW[r] = sum of dy over the positions of id r; zero for rows no id names.
  const Vec want = ref::scatter_add_rows(dyv, Vec(ids.begin(), ids.end()), V, D);
  const auto g = w.w16.grad().to_host();
  expect_fp16_grad(g, want, "dweight (fp16)");
  for (int64_t d = 0; d < D; ++d) EXPECT_EQ(g[10 * D + d], 0.0f) << "row 10 is never named";
  ag::backward(ops::embedding(w.w16, t), dy);  // adds
  expect_doubled(w.w16.grad().to_host(), g, "dweight after two backwards");
}

TEST(HalfWeights, ExpertMlpMatchesTheF32OpBitForBit) {
  for (bool glu : {true, false}) {
    const int64_t d = 17, f = 24;
    const std::vector<int64_t> offsets = {0, 1, 9, 9, 20, 26, 26, 30, 37};  // experts 2, 5 own no rows
    const int64_t r = offsets.back(), x = int64_t(offsets.size()) - 1;
    std::vector<Pair> w1, w2, w3;
    for (int64_t e = 0; e < x; ++e) {
      w1.push_back(weight_pair(Shape{f, d}, 100 + e));
      w2.push_back(weight_pair(Shape{d, f}, 200 + e));
      if (glu) w3.push_back(weight_pair(Shape{f, d}, 300 + e));
    }
    auto pick = [](const std::vector<Pair>& v, bool half) {
      std::vector<Tensor> out;
      for (const auto& p : v) out.push_back(half ? p.w16 : p.w32);
      return out;
    };
    const Vec xv = randn(r * d, 12);
    Tensor xs16 = upload(Shape{r, d}, xv, true), xs32 = upload(Shape{r, d}, xv, true);
    const Tensor dy = upload(Shape{r, d}, randn(r * d, 13));
    const auto act = glu ? ops::ExpertActivation::swiglu : ops::ExpertActivation::gelu;
    std::vector<std::vector<float>> first;
    for (int pass = 1; pass <= 2; ++pass) {
      const Tensor y16 = ops::expert_mlp(xs16, offsets, pick(w1, true), pick(w2, true), pick(w3, true), act);
      const auto out16 = y16.to_host();
      ag::backward(y16, dy);
      const Tensor y32 = ops::expert_mlp(xs32, offsets, pick(w1, false), pick(w2, false), pick(w3, false), act);
      EXPECT_EQ(bits(out16), bits(y32.to_host())) << (glu ? "swiglu" : "gelu");
      ag::backward(y32, dy);
      EXPECT_EQ(bits(xs16.grad().to_host()), bits(xs32.grad().to_host()));
      size_t k = 0;
      for (const auto* set : {&w1, &w2, &w3})
        for (size_t e = 0; e < set->size(); ++e, ++k) {
          const auto g16 = (*set)[e].w16.grad().to_host();
          if (pass == 2) {
            expect_doubled(g16, first[k], "expert " + std::to_string(e) + " after two backwards");
            continue;
          }
          EXPECT_EQ(bits(g16), bits(rounded((*set)[e].w32.grad().to_host()))) << "expert " << e;
          if (e == 2 || e == 5)
            for (float v : g16) ASSERT_EQ(v, 0.0f) << "expert " << e << " owns no rows";
          first.push_back(g16);
        }
    }
  }
}

TEST(HalfWeights, MixedWeightDtypesAreAnError) {
  Pair a = weight_pair(Shape{6, 4}, 14), b = weight_pair(Shape{4, 6}, 15);
  const Tensor xs = upload(Shape{3, 4}, randn(12, 16));
  EXPECT_THROW(ops::expert_mlp(xs, {0, 3}, {a.w16}, {b.w32}, {}, ops::ExpertActivation::gelu),
               magellano::Error);
}

TEST(HalfWeights, CastOfAnFp16ParameterSendsAnFp16Gradient) {
  // cast(w16, f32) is the generic way to use an fp16 parameter in an f32 op: its gradient is
  // the f32 gradient rounded to fp16.
  Pair w = weight_pair(Shape{7, 5}, 17);
  const Vec sv = randn(35, 18);
  const Tensor s = upload(Shape{7, 5}, sv);
  ag::backward(ops::sum(ops::mul(ops::cast(w.w16, DType::f32), s)));
  const auto g = w.w16.grad().to_host();
  for (size_t i = 0; i < g.size(); ++i) ASSERT_EQ(g[i], fp16(float(sv[i]))) << i;
}

TEST(HalfWeights, OtherWritersOfAnFp16GradientAreRefused) {
  // An op that writes f32 gradients only cannot take an fp16 parameter's gradient buffer: the
  // error names the tensor instead of silently detaching the optimizer's buffer.
  Pair w = weight_pair(Shape{3, 2}, 19);
  w.w16.set_name("layer.weight");
  try {
    ag::grad_target(w.w16.meta());
    FAIL() << "an f32-only writer got an fp16 gradient";
  } catch (const magellano::Error& e) {
    EXPECT_NE(std::string(e.what()).find("'layer.weight' is an fp16 parameter"), std::string::npos) << e.what();
  }
  EXPECT_EQ(ag::grad_target(w.w16.meta(), true).tensor.dtype(), DType::f16);
  // f32-only ops refuse f16 inputs up front.
  EXPECT_THROW(ops::mul(w.w16, w.w32), magellano::Error);
}
