// int4 kernels (cl/int4.cl) against the float64 reference (tests/support/reference/int4.cpp)
// and the host implementation quant::quantize_int4 (which tests/unit/test_int4_files.cpp checks
// against compressed-tensors' own output): quantized words and scales equal bit for bit,
// dequantized values exactly, at odd sizes (widths not a multiple of 8, groups straddling
// words), on poisoned (NaN-filled) fresh buffers. int4_linear against ref::linear with the
// reference's dequantized weight, on both kernel mappings; the recipe must reject deliberately
// broken variants. Perf size: a (768, 768) weight applied to 8 x 512 rows.
#include <gtest/gtest-spi.h>

#include <algorithm>
#include <cmath>

#include "error_text.hpp"
#include "op_case.hpp"
#include "reference.hpp"
#include "magellano/ops/decode_gemv.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/int4.hpp"
#include "magellano/ops/reduce.hpp"
#include "magellano/ops/rmsnorm.hpp"
#include "magellano/quant/int4_group.hpp"

using namespace mgtest;
using namespace magellano;

namespace {

using M = ops::KernelMapping;

// Random weights with the cases that make the rules matter: exact zeros, an all-zero group, a
// value exactly halfway between two codes and huge magnitudes (scales saturating at 65504).
// huge: row 3's first group times 1e7 (quantize / dequantize tests only: its dequantized values
// overflow fp16 to +-Inf, as compressed-tensors' fp16 arithmetic does).
std::vector<float> weights(int64_t rows, int64_t cols, int64_t g, uint64_t seed, bool huge = false) {
  const double scale = 0.1;
  std::vector<float> w = to_f32(randn(rows * cols, seed, scale));
  for (int64_t i = 0; i < rows * cols; i += 11) w[i] = 0.0f;
  if (rows >= 2)
    for (int64_t i = 0; i < g; ++i) w[cols + i] = 0.0f;  // row 1's first group
  if (rows >= 3) {  // row 2, group 0: absmax 7.5 -> scale 1, so 2.5 and -3.5 are ties (to 2 and -4)
    w[2 * cols] = 7.5f;
    if (g >= 3) w[2 * cols + 1] = 2.5f, w[2 * cols + 2] = -3.5f;
  }
  if (huge && rows >= 4)
    for (int64_t i = 0; i < g; ++i) w[3 * cols + i] *= 1e7f;  // absmax / 7.5 above 65504
  return w;
}

struct Sizes {
  int64_t rows, cols, g;
};
// Widths: a multiple of 8 or not, groups a multiple of 8 (the fused kernel's float8 path) or
// straddling words (its element path), one group per row, G = 128.
const Sizes kSizes[] = {{1, 8, 8}, {3, 36, 12}, {5, 70, 35}, {7, 200, 40}, {4, 256, 128}, {6, 24, 24}, {9, 45, 9}};

std::string name_of(const Sizes& s) {
  return "(" + std::to_string(s.rows) + ", " + std::to_string(s.cols) + ") g " + std::to_string(s.g);
}

}  // namespace

TEST(Int4Kernels, QuantizeEqualsTheFloat64ReferenceAndTheHost) {
  for (const Sizes& s : kSizes) {
    const std::vector<float> w = weights(s.rows, s.cols, s.g, 10 + s.cols, true);
    const ops::Int4Weight q = ops::quantize_int4(Tensor::from_host(test_ctx(), Shape{s.rows, s.cols}, w), s.g);
    const ref::Int4Ref want = ref::int4_quantize(to_f64(w), s.rows, s.cols, s.g);
    const std::vector<int32_t> words = q.packed.to_host_i32();
    EXPECT_EQ(ref::int4_unpack(words, s.rows, s.cols), want.codes) << name_of(s);
    EXPECT_EQ(to_f64(q.scales.to_host()), want.scales) << name_of(s);
    // The host implementation (what `magellano quantize --format int4` writes): the same words.
    const quant::Int4Weight h = quant::quantize_int4(w.data(), s.rows, s.cols, s.g, quant::FloatType::f32,
                                                     quant::FloatType::f16);
    EXPECT_EQ(words, h.packed) << name_of(s);
    EXPECT_EQ(q.scales.to_host(), h.scales) << name_of(s);
  }
}

TEST(Int4Kernels, DequantizeEqualsTheFloat64Reference) {
  for (const Sizes& s : kSizes) {
    const std::vector<float> w = weights(s.rows, s.cols, s.g, 20 + s.cols, true);
    const ops::Int4Weight q = ops::quantize_int4(Tensor::from_host(test_ctx(), Shape{s.rows, s.cols}, w), s.g);
    const Vec want = ref::int4_dequantize(ref::int4_quantize(to_f64(w), s.rows, s.cols, s.g), s.rows, s.cols, s.g);
    EXPECT_EQ(to_f64(ops::dequantize_int4(q).to_host()), want) << name_of(s);  // exact: NaN poison fails too
  }
}

TEST(Int4Kernels, FromHostRoundTripsAndStorageIsAbout0516BytesAWeight) {
  const int64_t rows = 64, cols = 1024;
  const std::vector<float> w = weights(rows, cols, 128, 3);
  const quant::Int4Weight h = quant::quantize_int4(w.data(), rows, cols, 128, quant::FloatType::f32, quant::FloatType::f16);
  const ops::Int4Weight q = ops::int4_from_host(test_ctx(), rows, cols, 128, h.packed, h.scales, "w");
  EXPECT_EQ(ops::dequantize_int4(q).to_host(), quant::dequantize_int4(h));
  EXPECT_NEAR(q.bits_per_param(), 4.0 + 16.0 / 128, 1e-9);
  EXPECT_EQ(q.packed.storage()->category(), MemCategory::parameters);
}

TEST(Int4Kernels, BadInputIsAClearError) {
  Tensor w = upload(Shape{4, 36}, randn(144, 1));
  EXPECT_THROW(ops::quantize_int4(w, 8), magellano::Error);  // 8 does not divide 36
  EXPECT_THROW(ops::quantize_int4(upload(Shape{144}, randn(144, 1)), 12), magellano::Error);
  EXPECT_THROW(ops::quantize_int4(Tensor::from_host_i32(test_ctx(), Shape{1, 8}, std::vector<int32_t>(8)), 8),
               magellano::Error);
  EXPECT_THROW(ops::int4_from_host(test_ctx(), 4, 36, 12, std::vector<int32_t>(19), std::vector<float>(12), "w"),
               magellano::Error);
  EXPECT_THROW(ops::int4_from_host(test_ctx(), 4, 36, 12, std::vector<int32_t>(20), std::vector<float>(11), "w"),
               magellano::Error);
  const ops::Int4Weight q = ops::quantize_int4(w, 12);
  EXPECT_THROW(ops::int4_linear(upload(Shape{3, 35}, randn(105, 2)), q), magellano::Error);
  EXPECT_THROW(ops::int4_linear(upload(Shape{9, 36}, randn(9 * 36, 2)), q, ops::Int4Path::fused), magellano::Error);
  EXPECT_THROW(ops::dequantize_int4_into(q, Tensor::empty(test_ctx(), Shape{143})), magellano::Error);
}

namespace {

// A device weight from weights(out, in, g, seed) and the reference's dequantized values.
struct Int4Case {
  ops::Int4Weight q;
  Vec dequantized;
};
Int4Case int4_weight(int64_t out, int64_t in, int64_t g, uint64_t seed) {
  const std::vector<float> w = weights(out, in, g, seed);
  return {ops::quantize_int4(Tensor::from_host(test_ctx(), Shape{out, in}, w), g),
          ref::int4_dequantize(ref::int4_quantize(to_f64(w), out, in, g), out, in, g)};
}

// Bytes: x and y, the packed weight (0.5 + 2 / g bytes a weight) and, dequantizing, its fp32
// copy written and read (8 bytes a weight; the fused path skips it); backward likewise.
Cost int4_linear_cost(double rows, double in, double out, double g, bool fused) {
  const double w = in * out * (0.5 + 2.0 / g);
  const double fwd = 4 * rows * (in + out) + w + (fused ? 0.0 : 8 * in * out);
  return {fwd, 2 * rows * in * out, 4 * rows * (in + out) + w + 8 * in * out, 2 * rows * in * out};
}

CaseSpec int4_linear_case(const Shape& xs, int64_t out, int64_t g, uint64_t seed, ops::Int4Path path, M mapping,
                          const Tolerance& tol = {}) {
  const int64_t in = xs.last();
  const char* p = path == ops::Int4Path::fused ? " fused" : path == ops::Int4Path::dequant_gemm ? " dequant" : "";
  return {"int4_linear " + dims(xs) + " W " + std::to_string(out) + "x" + std::to_string(in) + " g" +
              std::to_string(g) + p + (mapping == M::automatic ? "" : std::string(" ") + ops::to_string(mapping)),
          [=] {
            const Int4Case w = int4_weight(out, in, g, seed);
            const int64_t rows = xs.numel() / in;
            OpCase c;
            c.inputs = {{xs, randn(xs.numel(), seed + 1)}};
            c.device = [q = w.q, path, mapping](const std::vector<Tensor>& t) {
              if (mapping == M::automatic) return ops::int4_linear(t[0], q, path);  // the fixture's mapping
              ForcedMapping force(mapping);
              return ops::int4_linear(t[0], q, path);
            };
            c.ref = [=, wd = w.dequantized](const std::vector<Vec>& x) { return ref::linear(x[0], rows, in, wd, out); };
            c.ref_grad = [=, wd = w.dequantized](const std::vector<Vec>& x, const Vec& dy) {
              auto grads = zeros_like(x);
              Vec dw(wd.size(), 0.0);  // the frozen base's gradient is not an output
              ref::linear_bwd(x[0], rows, in, wd, out, dy, grads[0], dw);
              return grads;
            };
            c.tol = tol;
            c.sizes = {{"rows", rows}, {"in", in}, {"out", out}, {"group", g},
                       {"path", path == ops::Int4Path::fused ? "fused" : "auto"}};
            c.cost = int4_linear_cost(double(rows), double(in), double(out), double(g),
                                      path == ops::Int4Path::fused || (path == ops::Int4Path::automatic && rows == 1));
            return c;
          }};
}

// Tolerances: the fused kernel sums K products in another order than the float64 reference
// (eight partial sums, then a tree): relative 1e-5 with an absolute 1e-5 for sums near 0; the
// dequantize + GEMM path and the backward (one fp32 dot product of length K or out) the harness
// defaults. Widths 70 (groups of 35 straddle words: the element path), 200 (groups of 40: the
// float8 path) and 96 (groups of 48: the cpu mapping's sixteen-at-a-time path); 1, 3 and 8
// rows; both mappings.
const Tolerance kFused{.fwd_rtol = 1e-5, .fwd_atol = 1e-5};
std::vector<CaseSpec> int4_linear_tests() {
  std::vector<CaseSpec> v = {int4_linear_case(Shape{3, 5, 70}, 37, 35, 5, ops::Int4Path::automatic, M::automatic),
                             int4_linear_case(Shape{1, 72}, 19, 24, 6, ops::Int4Path::automatic, M::automatic, kFused)};
  for (const auto& [in, g] : {std::pair<int64_t, int64_t>{70, 35}, {200, 40}, {96, 48}})
    for (const Shape& xs : {Shape{1, in}, Shape{3, in}, Shape{2, 4, in}})
      for (M m : {M::cpu, M::gpu})
        v.push_back(int4_linear_case(xs, 29, g, 21 + in + xs.rows(), ops::Int4Path::fused, m, kFused));
  return v;
}

const RegisterOp reg{{"int4_linear", int4_linear_tests(),
                      int4_linear_case(Shape{8 * 512, 768}, 768, 128, 3, ops::Int4Path::automatic, M::automatic)}};

// Failures check_op reports for the case (x (3, 200), W (29, 200), g 40, fused) run by `op`.
std::vector<std::string> failures_of(const std::function<Tensor(const Tensor&, const ops::Int4Weight&)>& op) {
  const OpCase oc = int4_linear_case(Shape{3, 200}, 29, 40, 7, ops::Int4Path::fused, M::automatic, kFused).build();
  const Int4Case w = int4_weight(29, 200, 40, 7);
  testing::TestPartResultArray results;
  {
    testing::ScopedFakeTestPartResultReporter reporter(
        testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &results);
    check_op("broken int4_linear", oc.inputs, [&](const std::vector<Tensor>& t) { return op(t[0], w.q); }, oc.ref,
             oc.ref_grad, oc.tol);
  }
  std::vector<std::string> out;
  for (int i = 0; i < results.size(); ++i) out.push_back(results.GetTestPartResult(i).message());
  magellano::autograd::clear_tape();
  return out;
}

bool mentions(const std::vector<std::string>& messages, const std::string& what) {
  for (const auto& m : messages)
    if (m.find(what) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST(Int4Linear, FusedAndDequantizeGemmPathsAgree) {
  for (const auto& [in, g] : {std::pair<int64_t, int64_t>{70, 35}, {200, 40}, {256, 128}})
    for (M m : {M::cpu, M::gpu}) {
      ForcedMapping force(m);
      const ops::Int4Weight q = int4_weight(29, in, g, 21 + in).q;
      Tensor x = upload(Shape{5, in}, randn(5 * in, 3));
      expect_close(ops::int4_linear(x, q, ops::Int4Path::fused).to_host(),
                   to_f64(ops::int4_linear(x, q, ops::Int4Path::dequant_gemm).to_host()), 1e-5, 1e-5,
                   "fused vs dequant + GEMM");
    }
}

// The recipe must be able to fail.
TEST(Int4Linear, TheCheckRejectsDeliberatelyBrokenResults) {
  const auto good = failures_of([](const Tensor& x, const ops::Int4Weight& q) { return ops::int4_linear(x, q); });
  EXPECT_TRUE(good.empty()) << good.size() << " failures of the unbroken op";
  // The nibbles of every word in reverse order (the first column in the highest nibble).
  const auto reversed = failures_of([](const Tensor& x, const ops::Int4Weight& q) {
    std::vector<int32_t> words = q.packed.to_host_i32();
    for (auto& w : words) {
      uint32_t u = static_cast<uint32_t>(w), r = 0;
      for (int k = 0; k < 8; ++k) r |= ((u >> (4 * k)) & 15u) << (4 * (7 - k));
      w = static_cast<int32_t>(r);
    }
    ops::Int4Weight b = q;
    b.packed = Tensor::from_host_i32(test_ctx(), q.packed.shape(), words);
    return ops::int4_linear(x, b, ops::Int4Path::fused);
  });
  EXPECT_TRUE(mentions(reversed, "forward")) << reversed.size() << " failures";
  // One group's scale one fp16 step larger.
  const auto one_scale = failures_of([](const Tensor& x, const ops::Int4Weight& q) {
    std::vector<float> s = q.scales.to_host();
    s[7] = static_cast<float>(ref::round_f16(s[7] * (1 + 1.0 / 1024)));  // the next fp16 value
    ops::Int4Weight b = q;
    b.scales = Tensor::from_host(test_ctx(), q.scales.shape(), s, DType::f16);
    return ops::int4_linear(x, b, ops::Int4Path::fused);
  });
  EXPECT_TRUE(mentions(one_scale, "forward")) << one_scale.size() << " failures";
  // The right forward, but a backward scaled by 1e-30 (as if dx were never formed).
  const auto wrong_grad = failures_of([](const Tensor& x, const ops::Int4Weight& q) {
    Tensor y;
    {
      magellano::autograd::NoGradScope no_grad;
      y = ops::int4_linear(x, q);
    }
    return ops::add(y, ops::int4_linear(x, q), 1e-30f);
  });
  EXPECT_FALSE(mentions(wrong_grad, "forward")) << wrong_grad.size() << " failures";
  EXPECT_TRUE(mentions(wrong_grad, "gradient")) << wrong_grad.size() << " failures";
}

TEST(Int4Linear, TheBackwardAddsIntoAGradientXAlreadyHolds) {
  // x feeds two int4 products: its gradient is the sum of both (the second adds into the first).
  const ops::Int4Weight a = int4_weight(13, 72, 24, 1).q, b = int4_weight(11, 72, 24, 2).q;
  const Int4Case ra = int4_weight(13, 72, 24, 1), rb = int4_weight(11, 72, 24, 2);
  const Vec xv = randn(3 * 72, 4), da = randn(3 * 13, 5), db = randn(3 * 11, 6);
  Tensor x = upload(Shape{3, 72}, xv, true);
  const Tensor ya = ops::int4_linear(x, a), yb = ops::int4_linear(x, b, ops::Int4Path::dequant_gemm);
  const Tensor loss = ops::add(ops::sum(ops::mul(ya, upload(Shape{3, 13}, da))), ops::sum(ops::mul(yb, upload(Shape{3, 11}, db))));
  magellano::autograd::backward(loss);
  Vec want(3 * 72, 0.0), dw;
  dw.assign(13 * 72, 0.0);
  ref::linear_bwd(xv, 3, 72, ra.dequantized, 13, da, want, dw);
  dw.assign(11 * 72, 0.0);
  ref::linear_bwd(xv, 3, 72, rb.dequantized, 11, db, want, dw);
  expect_close(x.grad().to_host(), want, 1e-4, 1e-5, "dx of two int4 products");
}

// ---- ops::decode_gemv / decode_gemv_conv with an int4 weight (cl/decode_gemv.cl, W_INT4) ----------
// Against ref::decode_gemv with the reference's dequantized weight (the norm, bias, residual and the
// conv step as in tests/ops/test_decode_gemv.cpp), both mappings (OtherMapping/), groups of 32, 64
// and 128 (the cpu mapping's table lookup runs per group, x staged in local memory in tiles: 16 rows
// of 8,320 columns take two on PoCL's 1 MiB; the gpu mapping's lanes take words).
// Tolerances: decode_gemv's (rtol 1e-5, atol 2e-5): the same K-term fp32 dot product of O(1)
// terms in another order, one rsqrt; the weights themselves are exact.
namespace {

struct DecodeInt4 {
  int64_t b, k, o, g;
  bool norm, bias, res;
  double scale = 1.0;
};

CaseSpec decode_int4_case(DecodeInt4 p, uint64_t seed) {
  return {"decode_gemv int4 B " + std::to_string(p.b) + " K " + std::to_string(p.k) + " O " + std::to_string(p.o) +
              " g" + std::to_string(p.g) + (p.norm ? " norm" : "") + (p.bias ? " bias" : "") + (p.res ? " residual" : ""),
          [=] {
            const Int4Case w = int4_weight(p.o, p.k, p.g, seed);
            OpCase c;
            c.inputs = {{Shape{p.b, p.k}, randn(p.b * p.k, seed + 1, 1.3), false},
                        {Shape{p.k}, uniform(p.k, seed + 2, 0.5, 1.5), false},
                        {Shape{p.o}, randn(p.o, seed + 3), false},
                        {Shape{p.b, p.o}, randn(p.b * p.o, seed + 4), false}};
            c.device = [=, q = w.q](const std::vector<Tensor>& t) {
              ops::DecodeGemvParts parts;
              if (p.norm) parts.norm = t[1];
              if (p.bias) parts.bias = t[2];
              if (p.res) parts.residual = t[3];
              parts.scale = float(p.scale);
              return ops::decode_gemv(t[0], q, parts);
            };
            c.ref = [=, wd = w.dequantized](const std::vector<Vec>& x) {
              return ref::decode_gemv(x[0], p.b, p.k, wd, p.o, p.norm ? x[1] : Vec(), 1e-5, p.bias ? x[2] : Vec(),
                                      p.res ? x[3] : Vec(), double(float(p.scale)));
            };
            c.ref_grad = [](const std::vector<Vec>& x, const Vec&) { return std::vector<Vec>(x.size()); };
            c.tol = {.fwd_rtol = 1e-5, .fwd_atol = 2e-5};
            c.sizes = {{"B", p.b}, {"K", p.k}, {"O", p.o}, {"group", p.g}};
            c.cost = {p.o * p.k * (0.5 + 2.0 / double(p.g)) + 4.0 * (p.b * p.k + 2 * p.b * p.o),
                      2.0 * double(p.b * p.o * p.k), 0, 0};
            return c;
          }};
}

// decode_gemv_conv with an int4 in_proj: the output (B, 2E) ++ xc (B, E) ++ the conv state left.
CaseSpec decode_int4_conv_case(int64_t b, int64_t k, int64_t e, int64_t g, uint64_t seed) {
  return {"decode_gemv_conv int4 B " + std::to_string(b) + " K " + std::to_string(k) + " E " + std::to_string(e) +
              " g" + std::to_string(g),
          [=] {
            const int64_t o = 2 * e, width = 4;
            const Int4Case w = int4_weight(o, k, g, seed);
            OpCase c;
            c.inputs = {{Shape{b, k}, randn(b * k, seed + 1, 1.3), false},
                        {Shape{k}, uniform(k, seed + 2, 0.5, 1.5), false},
                        {Shape{e, width}, uniform(e * width, seed + 3, -0.7, 0.7), false},
                        {Shape{e}, randn(e, seed + 4, 0.3), false},
                        {Shape{b, e, width - 1}, randn(b * e * (width - 1), seed + 5), false}};
            c.device = [q = w.q](const std::vector<Tensor>& t) {
              const auto r = ops::decode_gemv_conv(t[0], q, {.norm = t[1], .eps = 1e-5f}, {t[2], t[3], t[4]});
              return joined(joined(r.out, r.xc), t[4]);
            };
            c.ref = [=, wd = w.dequantized](const std::vector<Vec>& x) {
              const Vec xz = ref::decode_gemv(x[0], b, k, wd, o, x[1], 1e-5, Vec(), Vec(), 1.0);
              Vec conv = x[4];
              const Vec xc = ref::mamba_conv_step(xz, b, e, x[2], width, x[3], conv);
              return joined(joined(xz, xc), conv);
            };
            c.ref_grad = [](const std::vector<Vec>& x, const Vec&) { return std::vector<Vec>(x.size()); };
            c.tol = {.fwd_rtol = 1e-5, .fwd_atol = 2e-5};
            c.sizes = {{"B", b}, {"K", k}, {"E", e}, {"group", g}};
            c.cost = {o * k * (0.5 + 2.0 / double(g)) + 4.0 * (b * k + 2 * b * o + 2 * b * e * width),
                      2.0 * double(b * o * k), 0, 0};
            return c;
          }};
}

const RegisterOp reg_decode{{"decode_gemv int4",
                             {decode_int4_case({1, 96, 29, 32, true, true, true, 0.7}, 31),   // odd O, 3 groups
                              decode_int4_case({3, 256, 17, 128, true, false, false}, 32),    // two groups of 128
                              decode_int4_case({16, 64, 5, 32, false, false, true, 1.5}, 33),  // the most rows
                              decode_int4_case({2, 320, 1, 64, false, true, false}, 34),      // one output
                              decode_int4_conv_case(2, 64, 9, 32, 35),                        // in_proj + conv
                              decode_int4_case({16, 8320, 3, 128, true, true, true}, 37)},  // x in two tiles on PoCL
                             decode_int4_case({1, 2048, 8192, 128, true, false, false}, 36)}};  // a large in_proj

}  // namespace

TEST(DecodeGemvInt4, TheCheckRejectsADeliberatelyBrokenVariant) {
  // Each row read with its neighbour's scales (a wrong scale row stride): the check must fail.
  const CaseSpec spec = decode_int4_case({3, 256, 17, 128, true, false, false}, 32);
  const Int4Case w = int4_weight(17, 256, 128, 32);
  const auto shifted = failures_with(spec, [&](const std::vector<Tensor>& t) {
    std::vector<float> s = w.q.scales.to_host();
    std::rotate(s.begin(), s.begin() + 2, s.end());  // two groups a row
    ops::Int4Weight b = w.q;
    b.scales = Tensor::from_host(test_ctx(), w.q.scales.shape(), s, DType::f16);
    return ops::decode_gemv(t[0], b, {.norm = t[1]});
  });
  EXPECT_FALSE(shifted.empty());
}

TEST(DecodeGemvInt4, EqualsTheInt4LinearOfTheNormedInput) {
  // The unfused composition the decode step replaces: rms_norm, then int4_linear (to fp32 rounding).
  for (M m : {M::cpu, M::gpu}) {
    ForcedMapping force(m);
    const ops::Int4Weight q = int4_weight(40, 192, 64, 41).q;
    const Tensor x = upload(Shape{4, 192}, randn(4 * 192, 42)), g = upload(Shape{192}, uniform(192, 43, 0.5, 1.5));
    expect_close(ops::decode_gemv(x, q, {.norm = g, .eps = 1e-5f}).to_host(),
                 to_f64(ops::int4_linear(ops::rms_norm(x, g, 1e-5f), q).to_host()), 1e-5, 2e-5,
                 std::string("decode_gemv int4 vs rms_norm + int4_linear, ") + ops::to_string(m));
  }
}

TEST(DecodeGemvInt4, BadWeightsAreOneClearError) {
  const Tensor x = upload(Shape{2, 48}, randn(96, 1));
  expect_error([&] { ops::decode_gemv(x, int4_weight(5, 48, 24, 2).q); },
               "int4 weights in groups of a multiple of 32, got groups of 24");
  expect_error([&] { ops::decode_gemv(x, int4_weight(5, 64, 32, 3).q); }, "x must be (B, K) and weight (O, K)");
  expect_error([&] { ops::decode_gemv(x, ops::Int4Weight{}); }, "the int4 weight must be 2-D (out, in)");
}
