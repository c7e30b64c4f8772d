// int4 kernels (cl/int4.cl) against the float64 reference (tests/support/reference/int4.cpp)
// and the host implementation quant::quantize_int4 (which tests/unit/test_int4_files.cpp checks
// against compressed-tensors' own output): quantized words and scales equal bit for bit,
// dequantized values exactly, at odd sizes (widths not a multiple of 8, groups straddling
// words), on poisoned (NaN-filled) fresh buffers. int4_linear against ref::linear with the
// reference's dequantized weight, on both kernel mappings; the recipe must reject deliberately
// broken variants. Perf size: a (768, 768) weight applied to 8 x 512 rows.
#include <gtest/gtest-spi.h>

#include <cmath>

#include "op_case.hpp"
#include "reference.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/int4.hpp"
#include "magellano/ops/reduce.hpp"
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
