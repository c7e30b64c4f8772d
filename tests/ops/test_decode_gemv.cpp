// ops::decode_gemv against float64 (ref::decode_gemv: rmsnorm, linear, residual add) as registered
// op cases (no autograd: forward only, poisoned outputs, both kernel mappings via OtherMapping/):
// K below one vector chunk, odd K and O, the most rows one launch takes, every fused part alone and
// together; a deliberately broken variant the check rejects; bad input. Perf size: phase1's LM
// head (1 row, K 448, O 50257, the final norm fused).
// Tolerances: rtol 1e-5, atol 2e-5: a K-term fp32 dot product of O(1) terms (weights U(±1/sqrt(K)),
// so outputs are O(1)) in a different order than float64, and one rsqrt.
#include "error_text.hpp"
#include "magellano/ops/decode_gemv.hpp"
#include "op_case.hpp"
#include "reference.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

namespace {

struct Parts {
  bool norm = false, bias = false, res = false;
  double scale = 1.0;
};

CaseSpec gemv_case(int64_t b, int64_t k, int64_t o, Parts p, uint64_t seed = 1) {
  const std::string name = "decode_gemv B " + std::to_string(b) + " K " + std::to_string(k) + " O " +
                           std::to_string(o) + (p.norm ? " norm" : "") + (p.bias ? " bias" : "") +
                           (p.res ? " residual" : "") + (p.scale != 1.0 ? " scaled" : "");
  return {name, [=] {
            OpCase c;
            const double s = 1.0 / std::sqrt(double(k));
            c.inputs = {{Shape{b, k}, randn(b * k, seed, 1.3), false},
                        {Shape{o, k}, uniform(o * k, seed + 1, -s, s), false},
                        {Shape{k}, uniform(k, seed + 2, 0.5, 1.5), false},
                        {Shape{o}, randn(o, seed + 3), false},
                        {Shape{b, o}, randn(b * o, seed + 4), false}};
            c.device = [=](const std::vector<Tensor>& t) {
              ops::DecodeGemvParts parts;
              if (p.norm) parts.norm = t[2], parts.eps = 1e-5f;
              if (p.bias) parts.bias = t[3];
              if (p.res) parts.residual = t[4];
              parts.scale = float(p.scale);
              return ops::decode_gemv(t[0], t[1], parts);
            };
            c.ref = [=](const std::vector<Vec>& x) {
              return ref::decode_gemv(x[0], b, k, x[1], o, p.norm ? x[2] : Vec(), 1e-5, p.bias ? x[3] : Vec(),
                                      p.res ? x[4] : Vec(), double(float(p.scale)));
            };
            c.ref_grad = [](const std::vector<Vec>& x, const Vec&) { return std::vector<Vec>(x.size()); };
            c.tol = {.fwd_rtol = 1e-5, .fwd_atol = 2e-5};
            c.sizes = {{"B", b}, {"K", k}, {"O", o}};
            // The weight read once, x and the outputs; 2 FLOPs per weight and row.
            c.cost = {4.0 * (o * k + b * k + 2 * b * o), 2.0 * b * o * k, 0, 0};
            return c;
          }};
}

const RegisterOp reg{{"decode_gemv",
                      {gemv_case(1, 7, 5, {}),                                   // K below one chunk
                       gemv_case(3, 33, 17, {.norm = true, .bias = true}),       // odd K, a tail
                       gemv_case(1, 448, 129, {.norm = true, .res = true, .scale = 0.7}),
                       gemv_case(16, 65, 40, {true, true, true, 1.5}),            // the most rows
                       gemv_case(5, 1001, 3, {.norm = true}),                     // many chunks per item
                       gemv_case(2, 28, 1, {.bias = true, .res = true})},          // one output
                      gemv_case(1, 448, 50257, {.norm = true})}};

}  // namespace

TEST(DecodeGemv, TheCheckRejectsADeliberatelyBrokenVariant) {
  const CaseSpec spec = gemv_case(3, 33, 17, {.norm = true, .bias = true});
  // The norm's epsilon 100x too large (as if the mean of squares were taken over a wrong width).
  const auto wrong_eps = failures_with(spec, [](const std::vector<Tensor>& t) {
    return ops::decode_gemv(t[0], t[1], {.norm = t[2], .eps = 1e-3f, .bias = t[3]});
  });
  EXPECT_FALSE(wrong_eps.empty());
  // The bias left out.
  const auto no_bias = failures_with(spec, [](const std::vector<Tensor>& t) {
    return ops::decode_gemv(t[0], t[1], {.norm = t[2], .eps = 1e-5f});
  });
  EXPECT_FALSE(no_bias.empty());
}

TEST(DecodeGemv, BadArgumentsAreOneClearError) {
  Tensor x = upload(Shape{2, 6}, randn(12, 1)), w = upload(Shape{4, 6}, randn(24, 2));
  expect_error([&] { ops::decode_gemv(x, upload(Shape{4, 5}, randn(20, 3))); }, "x must be (B, K) and weight (O, K)");
  expect_error([&] { ops::decode_gemv(upload(Shape{17, 6}, randn(102, 4)), w); }, "takes 1 to 16 rows");
  expect_error([&] { ops::decode_gemv(x, w, {.norm = w}); }, "the norm weight must be (6)");
  expect_error([&] { ops::decode_gemv(x, w, {.bias = x}); }, "the bias must be (4)");
  expect_error([&] { ops::decode_gemv(x, w, {.residual = x}); }, "the residual must be (2, 4)");
}
