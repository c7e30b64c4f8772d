// Group-wise int4 (quant/int4_group.hpp) against a float64 reference of compressed-tensors'
// arithmetic: scales exact (the correctly rounded fp16 / bf16 value of absmax / 7.5, the type's
// eps where that is 0), codes bit for bit (the quotient rounded to the weight's type, clamped to [-8, 7],
// rounded half to even), pack_to_int32's bit layout, odd widths, and the error bound.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

#include "error_text.hpp"
#include "harness.hpp"
#include "magellano/quant/int4_group.hpp"
#include "reference.hpp"

using namespace magellano;
using namespace mgtest;
using quant::FloatType;

namespace {

std::vector<float> rounded(const Vec& v, FloatType t) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = static_cast<float>(ref::round_float(v[i], t));
  return out;
}

void expect_matches_reference(const std::vector<float>& w, int64_t rows, int64_t cols, int64_t g, FloatType wt,
                              FloatType st, const std::string& what) {
  const quant::Int4Weight q = quant::quantize_int4(w.data(), rows, cols, g, wt, st);
  const ref::Int4Ref want = ref::int4_quantize(Vec(w.begin(), w.end()), rows, cols, g, wt, st);
  ASSERT_EQ(q.scales.size(), want.scales.size()) << what;
  for (size_t i = 0; i < want.scales.size(); ++i) ASSERT_EQ(double(q.scales[i]), want.scales[i]) << what << " scale " << i;
  const std::vector<int8_t> codes = quant::unpack_int4(q.packed.data(), rows, cols);
  for (size_t i = 0; i < codes.size(); ++i) ASSERT_EQ(int(codes[i]), want.codes[i]) << what << " code " << i;
  // Dequantized: code * scale rounded to the scale's type (x_q.to(scale.dtype) * scale).
  const std::vector<float> back = quant::dequantize_int4(q);
  const Vec want_back = ref::int4_dequantize(want, rows, cols, g, st);
  for (int64_t i = 0; i < rows * cols; ++i) ASSERT_EQ(double(back[i]), want_back[i]) << what << " value " << i;
}

}  // namespace

TEST(Int4Group, RoundToMatchesTheFloat64Rounding) {
  const Vec v = randn(4000, 1, 3.0);
  for (FloatType t : {FloatType::f16, FloatType::bf16, FloatType::f32})
    for (double x : v) {
      const float f = static_cast<float>(x);
      ASSERT_EQ(double(quant::round_to(t, f)), ref::round_float(double(f), t)) << x;
    }
  // round_to's fp16 and bf16 roundings are bit operations: a sweep over the fp32 bit patterns
  // (a prime stride, and every pattern near the edges: fp16's smallest normal 2^-14 and its
  // overflow at 65520, ties, subnormals, the infinities). All 2^32 were checked once.
  std::vector<uint32_t> bits;
  for (uint64_t u = 0; u < (uint64_t{1} << 32); u += 4099) bits.push_back(static_cast<uint32_t>(u));
  for (uint32_t edge : {0x38800000u, 0x477ff000u, 0x477fe000u, 0x33000000u, 0x7f800000u, 0x7f7fffffu, 0x00800000u})
    for (uint32_t d = 0; d < 4096; ++d) bits.push_back(edge - 2048 + d);
  for (uint32_t b : bits)
    for (uint32_t sign : {0u, 0x80000000u}) {
      const float f = std::bit_cast<float>(b | sign);
      if (std::isnan(f)) continue;
      for (FloatType t : {FloatType::f16, FloatType::bf16})
        ASSERT_EQ(double(quant::round_to(t, f)), ref::round_float(double(f), t)) << std::hexfloat << f;
    }
  EXPECT_TRUE(std::isnan(quant::round_to(FloatType::f16, NAN)));
  EXPECT_TRUE(std::isnan(quant::round_to(FloatType::bf16, NAN)));
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

TEST(Int4Group, RowBlocksEqualTheWholeAndSumTheError) {
  // quantize_int4_rows on uneven blocks of rows (odd row counts, groups straddling words, every
  // type pair the files use) fills exactly what quantize_int4 does; the blocks' error sums add
  // up to the float64 reference's (|w - w'|, |w|, |w - w'| / (|w| + 1e-8)) within fp32 rounding.
  struct Case { int64_t rows, cols, g; FloatType wt, st; };
  for (const Case& c : {Case{37, 96, 32, FloatType::f32, FloatType::f16}, Case{13, 36, 12, FloatType::bf16, FloatType::bf16},
                        Case{29, 40, 8, FloatType::f16, FloatType::f16}, Case{5, 20, 4, FloatType::f32, FloatType::f32}}) {
    const std::string what = std::to_string(c.rows) + "x" + std::to_string(c.cols) + " g" + std::to_string(c.g);
    Vec v = randn(size_t(c.rows * c.cols), uint64_t(c.rows + c.cols), 0.05);
    for (size_t i = 0; i < v.size(); ++i) v[i] *= std::ldexp(1.0, int(i / 16 % 24) - 16);  // scales over many binades
    const std::vector<float> w = rounded(v, c.wt);
    const quant::Int4Weight whole = quant::quantize_int4(w.data(), c.rows, c.cols, c.g, c.wt, c.st);
    quant::Int4Weight blocks = quant::int4_layout(c.rows, c.cols, c.g, c.st);
    ops::NF4Error sum;
    for (auto [r0, r1] : std::vector<std::pair<int64_t, int64_t>>{{0, 1}, {1, c.rows / 2}, {c.rows / 2, c.rows}}) {
      const auto e = quant::quantize_int4_rows(w.data(), c.wt, r0, r1, blocks);
      ASSERT_TRUE(e.has_value()) << what;
      EXPECT_EQ(e->n, (r1 - r0) * c.cols) << what;
      sum += *e;
    }
    EXPECT_EQ(blocks.packed, whole.packed) << what;
    EXPECT_EQ(blocks.scales, whole.scales) << what;
    const Vec wd(w.begin(), w.end());
    const Vec back = ref::int4_dequantize(ref::int4_quantize(wd, c.rows, c.cols, c.g, c.wt, c.st), c.rows, c.cols, c.g, c.st);
    double abs_sum = 0, mag_sum = 0, rel_sum = 0;
    for (size_t i = 0; i < wd.size(); ++i) {
      const double d = std::fabs(wd[i] - back[i]), m = std::fabs(wd[i]);
      abs_sum += d, mag_sum += m, rel_sum += d / (m + 1e-8);
    }
    EXPECT_EQ(sum.n, c.rows * c.cols) << what;
    EXPECT_NEAR(sum.abs_sum, abs_sum, 1e-5 * abs_sum) << what;
    EXPECT_NEAR(sum.mag_sum, mag_sum, 1e-5 * mag_sum) << what;
    EXPECT_NEAR(sum.rel_sum, rel_sum, 1e-5 * rel_sum) << what;
  }
}

TEST(Int4Group, RowBlocksReportInfAndNaNAndBadRanges) {
  std::vector<float> w = to_f32(randn(9 * 16, 6, 0.1));
  quant::Int4Weight q = quant::int4_layout(9, 16, 8, FloatType::f16);
  w[7 * 16 + 13] = NAN;  // row 7
  w[2 * 16 + 3] = -INFINITY;  // row 2
  EXPECT_TRUE(quant::quantize_int4_rows(w.data(), FloatType::f32, 3, 7, q).has_value());
  EXPECT_FALSE(quant::quantize_int4_rows(w.data(), FloatType::f32, 7, 9, q).has_value());
  EXPECT_FALSE(quant::quantize_int4_rows(w.data(), FloatType::f32, 0, 3, q).has_value());
  expect_error([&] { quant::quantize_int4_rows(w.data(), FloatType::f32, 5, 10, q); }, "rows [5, 10) of a weight laid out for 9 rows");
  quant::Int4Weight unlaid;
  unlaid.rows = 9, unlaid.cols = 16, unlaid.group_size = 8;
  expect_error([&] { quant::quantize_int4_rows(w.data(), FloatType::f32, 0, 9, unlaid); }, "use int4_layout");
  expect_error([&] { quant::int4_layout(4, 36, 16, FloatType::f16); }, "does not divide the input width 36");
}
