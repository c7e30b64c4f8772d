// Group-wise int4 (quant/int4_group.hpp) against a float64 reference of compressed-tensors'
// arithmetic: scales exact (the correctly rounded fp16 / bf16 value of absmax / 7.5, the type's
// eps where that is 0), codes bit for bit (the quotient rounded to the weight's type, clamped to [-8, 7],
// rounded half to even), pack_to_int32's bit layout, odd widths, and the error bound.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "error_text.hpp"
#include "harness.hpp"
#include "magellano/quant/int4_group.hpp"

using namespace magellano;
using namespace mgtest;
using quant::FloatType;

namespace {

// v rounded to nearest (ties to even) with `mant` fraction bits and smallest normal exponent
// `emin`, in float64 arithmetic: ulp = 2^(max(e, emin) - mant) for v in [2^e, 2^(e+1)).
double round_ref(double v, int mant, int emin) {
  if (v == 0.0) return v;
  int e;
  std::frexp(std::fabs(v), &e);  // |v| = f * 2^e, f in [0.5, 1): |v| in [2^(e-1), 2^e)
  const double ulp = std::ldexp(1.0, std::max(e - 1, emin) - mant);
  return std::nearbyint(v / ulp) * ulp;  // v / ulp is exact (a power of two) and below 2^54
}
double round_ref(FloatType t, double v) {
  switch (t) {
    case FloatType::f16: return round_ref(v, 10, -14);
    case FloatType::bf16: return round_ref(v, 7, -126);
    default: return round_ref(v, 23, -126);
  }
}

struct RefInt4 {
  std::vector<double> scales;
  std::vector<int> codes;
};

// compressed-tensors' symmetric int4 group quantization in float64.
RefInt4 reference(const std::vector<float>& w, int64_t rows, int64_t cols, int64_t g, FloatType wt, FloatType st) {
  RefInt4 r;
  r.codes.resize(w.size());
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j0 = 0; j0 < cols; j0 += g) {
      double m = 0;
      for (int64_t j = j0; j < j0 + g; ++j) m = std::max(m, std::fabs(double(w[i * cols + j])));
      double s = round_ref(st, m / 7.5);
      if (s == 0) s = st == FloatType::f16 ? 0x1p-10 : st == FloatType::bf16 ? 0x1p-7 : 0x1p-23;  // finfo(S).eps
      r.scales.push_back(s);
      for (int64_t j = j0; j < j0 + g; ++j) {
        const double q = std::clamp(round_ref(wt, double(w[i * cols + j]) / s), -8.0, 7.0);
        r.codes[i * cols + j] = static_cast<int>(std::nearbyint(q));
      }
    }
  return r;
}

std::vector<float> rounded(const Vec& v, FloatType t) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = static_cast<float>(round_ref(t, v[i]));
  return out;
}

void expect_matches_reference(const std::vector<float>& w, int64_t rows, int64_t cols, int64_t g, FloatType wt,
                              FloatType st, const std::string& what) {
  const quant::Int4Weight q = quant::quantize_int4(w.data(), rows, cols, g, wt, st);
  const RefInt4 ref = reference(w, rows, cols, g, wt, st);
  ASSERT_EQ(q.scales.size(), ref.scales.size()) << what;
  for (size_t i = 0; i < ref.scales.size(); ++i) ASSERT_EQ(double(q.scales[i]), ref.scales[i]) << what << " scale " << i;
  const std::vector<int8_t> codes = quant::unpack_int4(q.packed.data(), rows, cols);
  for (size_t i = 0; i < codes.size(); ++i) ASSERT_EQ(int(codes[i]), ref.codes[i]) << what << " code " << i;
  // Dequantized: code * scale rounded to the scale's type (x_q.to(scale.dtype) * scale).
  const std::vector<float> back = quant::dequantize_int4(q);
  for (int64_t i = 0; i < rows * cols; ++i)
    ASSERT_EQ(double(back[i]), round_ref(st, ref.codes[i] * ref.scales[(i / cols) * (cols / g) + (i % cols) / g]))
        << what << " value " << i;
}

}  // namespace

TEST(Int4Group, RoundToMatchesTheFloat64Rounding) {
  const Vec v = randn(4000, 1, 3.0);
  for (FloatType t : {FloatType::f16, FloatType::bf16, FloatType::f32})
    for (double x : v) {
      const float f = static_cast<float>(x);
      ASSERT_EQ(double(quant::round_to(t, f)), round_ref(t, double(f))) << x;
    }
  EXPECT_EQ(quant::round_to(FloatType::f16, 1e-7f), 1.1920928955078125e-07f);  // a subnormal: 1.68 -> 2 x 2^-24
  EXPECT_EQ(quant::round_to(FloatType::f16, 2.0f + 1.0f / 1024), 2.0f);          // the tie goes to even
  EXPECT_TRUE(std::isinf(quant::round_to(FloatType::f16, 70000.0f)));
}

TEST(Int4Group, CodesAndScalesEqualTheFloat64Reference) {
  // fp32 weights with fp16 scales (what `magellano quantize` writes for an fp32 checkpoint),
  // fp16 weights with fp16 scales, bf16 weights with bf16 scales (llm-compressor's own cases).
  const Vec v = randn(24 * 256, 2, 0.05);
  expect_matches_reference(to_f32(v), 24, 256, 128, FloatType::f32, FloatType::f16, "f32 / f16, group 128");
  expect_matches_reference(to_f32(v), 48, 128, 32, FloatType::f32, FloatType::f16, "f32 / f16, group 32");
  expect_matches_reference(rounded(v, FloatType::f16), 24, 256, 64, FloatType::f16, FloatType::f16, "f16 / f16");
  expect_matches_reference(rounded(v, FloatType::bf16), 24, 256, 128, FloatType::bf16, FloatType::bf16, "bf16 / bf16");
  expect_matches_reference(to_f32(v), 24, 256, 16, FloatType::f32, FloatType::f32, "f32 / f32");
  // Heavy tails and tiny groups: scales over many binades, some subnormal in fp16, some 0 (eps).
  Vec wide = randn(16 * 64, 3, 1.0);
  for (size_t i = 0; i < wide.size(); ++i) wide[i] *= std::ldexp(1.0, int(i / 32 % 40) - 30);
  expect_matches_reference(to_f32(wide), 16, 64, 8, FloatType::f32, FloatType::f16, "wide range");
}

TEST(Int4Group, TiesRoundToEvenAndTheEndsClamp) {
  // absmax 7.5: scale exactly 1, so x / scale = x and every half is a tie.
  const std::vector<float> w = {7.5f, 2.5f, 3.5f, -2.5f, -0.5f, 0.5f, -7.5f, 6.49f};
  const quant::Int4Weight q = quant::quantize_int4(w.data(), 1, 8, 8, FloatType::f32, FloatType::f16);
  EXPECT_EQ(q.scales, std::vector<float>{1.0f});
  const std::vector<int8_t> codes = quant::unpack_int4(q.packed.data(), 1, 8);
  // 7.5 clamps to 7; halves go to even; -7.5 rounds to -8 (the one value below -7).
  EXPECT_EQ(codes, (std::vector<int8_t>{7, 2, 4, -2, 0, 0, -8, 6}));
  // An all-zero group: the scale is fp16's epsilon, 2^-10 (torch.finfo(float16).eps), every code 0;
  // also a group so small that its scale rounds to 0 in fp16 (absmax / 7.5 below 2^-25).
  std::vector<float> zeros(16, 0.0f);
  zeros[12] = 1e-7f;
  const quant::Int4Weight z = quant::quantize_int4(zeros.data(), 2, 8, 4, FloatType::f32, FloatType::f16);
  for (float s : z.scales) EXPECT_EQ(s, 0x1p-10f);
  EXPECT_EQ(quant::int4_scale(0.0f, FloatType::bf16), 0x1p-7f);
  EXPECT_EQ(quant::int4_scale(0.0f, FloatType::f32), 0x1p-23f);
  for (int8_t c : quant::unpack_int4(z.packed.data(), 2, 8)) EXPECT_EQ(c, 0);
  for (float x : quant::dequantize_int4(z)) EXPECT_EQ(x, 0.0f);
  // The quotient is rounded to the weight's type before the integer rounding: in bf16,
  // 2.5078125 (= 2.5 + 2^-7, exact in fp32 but not in bf16, whose step at 2 is 2^-6) becomes
  // 2.5 and rounds to 2; in fp32 it rounds to 3.
  EXPECT_EQ(quant::int4_code(2.5078125f, 1.0f, FloatType::f32), 3);
  EXPECT_EQ(quant::int4_code(2.5078125f, 1.0f, FloatType::bf16), 2);
}

TEST(Int4Group, PackingIsPackToInt32sLayout) {
  // pack_to_int32: code + 8 as 4 bits, the first column in the lowest nibble.
  const std::vector<int8_t> a = {-8, -7, -6, -5, -4, -3, -2, -1};
  EXPECT_EQ(quant::pack_int4(a.data(), 1, 8), std::vector<int32_t>{0x76543210});
  const std::vector<int8_t> b = {0, 1, 2, 3, 4, 5, 6, 7};
  EXPECT_EQ(quant::pack_int4(b.data(), 1, 8), std::vector<int32_t>{int32_t(0xFEDCBA98u)});  // negative as int32
  // A width that is not a multiple of 8: each row's last word padded with 0 nibbles.
  const std::vector<int8_t> c = {-8, 7, 0, 1, 2, 3, 4, 5, 6, 7, -1};
  EXPECT_EQ(quant::pack_int4(c.data(), 1, 11), (std::vector<int32_t>{int32_t(0xDCBA98F0u), 0x7FE}));
  const std::vector<int8_t> d = {3, -3, 5};  // 3 rows of 1 column: one word each
  EXPECT_EQ(quant::pack_int4(d.data(), 3, 1), (std::vector<int32_t>{0xB, 0x5, 0xD}));
}

TEST(Int4Group, PackUnpackRoundTrip) {
  for (auto [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {3, 7}, {4, 8}, {5, 17}, {2, 64}, {7, 129}}) {
    const Vec u = uniform(size_t(rows * cols), uint64_t(rows * 100 + cols), -8.0, 8.0);
    std::vector<int8_t> codes(u.size());
    for (size_t i = 0; i < u.size(); ++i) codes[i] = static_cast<int8_t>(std::clamp(std::floor(u[i]), -8.0, 7.0));
    const std::vector<int32_t> packed = quant::pack_int4(codes.data(), rows, cols);
    ASSERT_EQ(int64_t(packed.size()), rows * ((cols + 7) / 8)) << rows << "x" << cols;
    EXPECT_EQ(quant::unpack_int4(packed.data(), rows, cols), codes) << rows << "x" << cols;
  }
}

TEST(Int4Group, OddWidths) {
  // Widths that are not a multiple of 8 (groups of 4 and 12): exact, the padding never read.
  const Vec v = randn(5 * 36, 4, 0.2);
  expect_matches_reference(to_f32(v), 5, 36, 12, FloatType::f32, FloatType::f16, "36 in groups of 12");
  expect_matches_reference(to_f32(v), 9, 20, 4, FloatType::f32, FloatType::f16, "20 in groups of 4");
  const quant::Int4Weight q = quant::quantize_int4(to_f32(v).data(), 5, 36, 12, FloatType::f32, FloatType::f16);
  EXPECT_EQ(q.words_per_row(), 5);
  EXPECT_EQ(q.groups_per_row(), 3);
  for (int64_t r = 0; r < 5; ++r) EXPECT_EQ(uint32_t(q.packed[r * 5 + 4]) >> 16, 0u) << "padding of row " << r;
  // A group size that does not divide the width: compressed-tensors refuses it, and so do we.
  expect_error([&] { quant::quantize_int4(to_f32(v).data(), 5, 36, 16, FloatType::f32, FloatType::f16); },
               "does not divide the input width 36");
  expect_error([&] { quant::quantize_int4(to_f32(v).data(), 5, 36, 0, FloatType::f32, FloatType::f16); },
               "must be positive");
}

TEST(Int4Group, ErrorIsAtMostHalfAStep) {
  // |w - w'| <= scale / 2 (the rounding), widened by the fp16 rounding of the scale (the largest
  // value can sit 7.5 (1 + 2^-11) steps out) and of code * scale (2^-11 relative): 0.51 scale.
  const int64_t rows = 64, cols = 256, g = 128;
  const std::vector<float> w = to_f32(randn(size_t(rows * cols), 5, 0.02));
  const quant::Int4Weight q = quant::quantize_int4(w.data(), rows, cols, g, FloatType::f32, FloatType::f16);
  const std::vector<float> back = quant::dequantize_int4(q);
  double err = 0, mag = 0;
  for (int64_t i = 0; i < rows * cols; ++i) {
    const double s = q.scales[(i / cols) * (cols / g) + (i % cols) / g];
    ASSERT_LE(std::fabs(double(w[i]) - back[i]), 0.51 * s) << i;
    err += std::fabs(double(w[i]) - back[i]), mag += std::fabs(double(w[i]));
  }
  // Gaussian weights in groups of 128: the largest is ~2.9 sigma, a step ~0.39 sigma, so the
  // mean error is ~0.1 sigma, ~12% of the mean |w| (0.8 sigma).
  EXPECT_GT(err / mag, 0.08);
  EXPECT_LT(err / mag, 0.16);
}
