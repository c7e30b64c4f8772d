// ops::decode_gemv against float64 (ref::decode_gemv: rmsnorm, linear, residual add), and
// ops::decode_gemv_conv (+ ref::mamba_conv_step: the output, xc and the conv state left) as registered
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

// ops::decode_gemv_conv: the output (B, 2E) ++ xc (B, E) ++ the conv state it leaves (B, E, W-1).
CaseSpec conv_case(int64_t b, int64_t k, int64_t e, int64_t w, bool conv_bias, uint64_t seed = 1) {
  const std::string name = "decode_gemv_conv B " + std::to_string(b) + " K " + std::to_string(k) + " E " +
                           std::to_string(e) + " W " + std::to_string(w) + (conv_bias ? " conv bias" : "");
  return {name, [=] {
            OpCase c;
            const double s = 1.0 / std::sqrt(double(k));
            const int64_t o = 2 * e;
            c.inputs = {{Shape{b, k}, randn(b * k, seed, 1.3), false},
                        {Shape{o, k}, uniform(o * k, seed + 1, -s, s), false},
                        {Shape{k}, uniform(k, seed + 2, 0.5, 1.5), false},
                        {Shape{o}, randn(o, seed + 3), false},
                        {Shape{e, w}, uniform(e * w, seed + 4, -0.7, 0.7), false},
                        {Shape{e}, randn(e, seed + 5, 0.3), false},
                        {Shape{b, e, w - 1}, randn(b * e * (w - 1), seed + 6), false}};
            c.device = [=](const std::vector<Tensor>& t) {
              const auto r = ops::decode_gemv_conv(t[0], t[1], {.norm = t[2], .eps = 1e-5f, .bias = t[3]},
                                                   {t[4], conv_bias ? t[5] : Tensor(), t[6]});
              return joined(joined(r.out, r.xc), t[6]);
            };
            c.ref = [=](const std::vector<Vec>& x) {
              const Vec xz = ref::decode_gemv(x[0], b, k, x[1], o, x[2], 1e-5, x[3], Vec(), 1.0);
              Vec conv = x[6];
              const Vec xc = ref::mamba_conv_step(xz, b, e, x[4], w, conv_bias ? x[5] : Vec(), conv);
              return joined(joined(xz, xc), conv);
            };
            c.ref_grad = [](const std::vector<Vec>& x, const Vec&) { return std::vector<Vec>(x.size()); };
            c.tol = {.fwd_rtol = 1e-5, .fwd_atol = 2e-5};
            c.sizes = {{"B", b}, {"K", k}, {"E", e}, {"W", w}};
            // The product's traffic and FLOPs, plus the conv state read and written and its W-term dots.
            c.cost = {4.0 * (o * k + b * k + 2 * b * o + e * (w + 1) + 2 * b * e * w),
                      2.0 * b * o * k + 2.0 * b * e * (w + 3), 0, 0};
            return c;
          }};
}

const RegisterOp reg_conv{{"decode_gemv_conv",
                           {conv_case(1, 7, 5, 4, true),      // K below one chunk, odd E
                            conv_case(3, 33, 17, 4, false),   // odd K, no conv bias
                            conv_case(2, 65, 9, 3, true),     // width 3
                            conv_case(16, 12, 4, 1, true),    // width 1 (no state), the most rows
                            conv_case(5, 1001, 3, 4, true)},  // many chunks per item
                           conv_case(1, 448, 896, 4, true)}};  // phase1's in_proj

const RegisterOp reg{{"decode_gemv",
                      {gemv_case(1, 7, 5, {}),                                   // K below one chunk
                       gemv_case(3, 33, 17, {.norm = true, .bias = true}),       // odd K, a tail
                       gemv_case(1, 448, 129, {.norm = true, .res = true, .scale = 0.7}),
                       gemv_case(16, 65, 40, {true, true, true, 1.5}),            // the most rows
                       gemv_case(5, 1001, 3, {.norm = true}),                     // many chunks per item
                       gemv_case(2, 28, 1, {.bias = true, .res = true})},          // one output
                      gemv_case(1, 448, 50257, {.norm = true})}};

}  // namespace

TEST(DecodeGemvConv, TheCheckRejectsADeliberatelyBrokenVariant) {
  // The conv state not shifted: out and xc are right, the state left behind is not.
  const auto stale_state = failures_with(conv_case(3, 33, 17, 4, false), [](const std::vector<Tensor>& t) {
    const Tensor before = upload(t[6].shape(), to_f64(t[6].to_host()));
    const auto r = ops::decode_gemv_conv(t[0], t[1], {.norm = t[2], .eps = 1e-5f, .bias = t[3]}, {t[4], Tensor(), t[6]});
    return joined(joined(r.out, r.xc), before);
  });
  EXPECT_FALSE(stale_state.empty());
  // The conv bias dropped.
  const auto no_bias = failures_with(conv_case(2, 65, 9, 3, true), [](const std::vector<Tensor>& t) {
    const auto r = ops::decode_gemv_conv(t[0], t[1], {.norm = t[2], .eps = 1e-5f, .bias = t[3]}, {t[4], Tensor(), t[6]});
    return joined(joined(r.out, r.xc), t[6]);
  });
  EXPECT_FALSE(no_bias.empty());
}

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
  const Tensor cw = upload(Shape{2, 4}, randn(8, 5)), st = upload(Shape{2, 2, 3}, randn(12, 6));
  expect_error([&] { ops::decode_gemv_conv(x, w, {}, {upload(Shape{3, 4}, randn(12, 7)), Tensor(), st}); },
               "the conv weight must be (E, W) f32 with 2E = 4 outputs");
  expect_error([&] { ops::decode_gemv_conv(x, w, {}, {cw, Tensor(), upload(Shape{2, 2, 2}, randn(8, 8))}); },
               "the conv state must be (2, 2, 3)");
  expect_error([&] { ops::decode_gemv_conv(x, w, {}, {cw, upload(Shape{3}, randn(3, 9)), st}); },
               "the conv bias must be (2)");
}
