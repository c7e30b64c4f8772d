#include "magellano/quant/int4_group.hpp"

#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>

#include "magellano/runtime/error.hpp"

namespace magellano::quant {

namespace {

// The roundings below work on one fp32 value or on F4, four of them at once (GCC / Clang vector
// extensions: SSE2 on x86-64, NEON on ARM), with the same expressions.
using F4 = float __attribute__((vector_size(16)));
using U4 = uint32_t __attribute__((vector_size(16)));
using I4 = int32_t __attribute__((vector_size(16)));
template <class F> struct BitsOf { using type = uint32_t; };
template <> struct BitsOf<F4> { using type = U4; };
template <class T, class S>
T splat(S x) {
  if constexpr (std::is_arithmetic_v<T>) return static_cast<T>(x);
  else return T{} + static_cast<std::remove_reference_t<decltype(T{}[0])>>(x);
}

// v rounded to bf16 (nearest even): the top 16 bits of the rounded fp32 word. Exact for every
// input, subnormals and infinities included; NaN stays NaN.
template <class F>
F round_bf16(F v) {
  using U = typename BitsOf<F>::type;
  const U u = std::bit_cast<U>(v);
  const U rounded = ((u + 0x7fffu + ((u >> 16) & 1u)) >> 16) << 16;
  return std::bit_cast<F>((u & 0x7fffffffu) > 0x7f800000u ? u : rounded);
}

// v rounded to fp16 (nearest even) as an fp32 value, without F16C: normal results keep the top
// 10 of 23 fraction bits (rounded at bit 13, a carry may raise the exponent); below 2^-14 (fp16
// subnormals) |v| + 0.5 rounds to a multiple of 2^-24 in fp32's own arithmetic; from 65520 (half
// way to 65536) on the result is Inf. NaN stays NaN. Equal to cl_half_from_float(v, CL_HALF_RTE)
// converted back for every fp32 input (checked for all 2^32 once; the unit test sweeps them).
template <class F>
F round_f16(F v) {
  using U = typename BitsOf<F>::type;
  const U u = std::bit_cast<U>(v), a = u & 0x7fffffffu;
  const U normal = (a + 0xfffu + ((a >> 13) & 1u)) & ~0x1fffu;
  const U subnormal = std::bit_cast<U>((std::bit_cast<F>(a) + 0.5f) - 0.5f);
  const U r = a > 0x7f800000u ? a
              : a >= 0x477ff000u ? splat<U>(0x7f800000u)
              : a < 0x38800000u ? subnormal : normal;
  return std::bit_cast<F>((u ^ a) | r);
}

template <FloatType T, class F>
F round_t(F v) {
  if constexpr (T == FloatType::f16) return round_f16(v);
  else if constexpr (T == FloatType::bf16) return round_bf16(v);
  else return v;
}

template <class F>
F abs_of(F v) {
  using U = typename BitsOf<F>::type;
  return std::bit_cast<F>(std::bit_cast<U>(v) & 0x7fffffffu);
}

float max_finite(FloatType t) {
  switch (t) {
    case FloatType::f16: return 65504.0f;
    case FloatType::bf16: return 3.3895313892515355e+38f;  // 0x7f7f as bf16
    default: return std::numeric_limits<float>::max();
  }
}

}  // namespace

float round_to(FloatType t, float v) {
  switch (t) {
    case FloatType::f16: return round_f16(v);
    case FloatType::bf16: return round_bf16(v);
    default: return v;
  }
}

float float_eps(FloatType t) {
  switch (t) {
    case FloatType::f16: return 0x1p-10f;
    case FloatType::bf16: return 0x1p-7f;
    default: return 0x1p-23f;
  }
}

float int4_scale(float absmax, FloatType s) {
  // calculate_qparams: max_val_pos / 7.5 in the weight's dtype, rounded to the scale's dtype
  // (clamped to its range first), a 0 replaced by that dtype's eps. One fp32 division then one
  // rounding to s equals the correctly rounded quotient in s (24 >= 2 * 11 + 2 bits).
  const float scale = round_to(s, std::min(absmax / 7.5f, max_finite(s)));
  return scale == 0.0f ? float_eps(s) : scale;
}

std::vector<int32_t> pack_int4(const int8_t* codes, int64_t rows, int64_t cols) {
  const int64_t words = (cols + kInt4PerWord - 1) / kInt4PerWord;
  std::vector<int32_t> out(static_cast<size_t>(rows * words), 0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const uint32_t nibble = static_cast<uint32_t>(codes[r * cols + c] - kInt4Min) & 0xFu;
      uint32_t& word = reinterpret_cast<uint32_t&>(out[r * words + c / kInt4PerWord]);
      word |= nibble << (4 * (c % kInt4PerWord));
    }
  return out;
}

std::vector<int8_t> unpack_int4(const int32_t* packed, int64_t rows, int64_t cols) {
  const int64_t words = (cols + kInt4PerWord - 1) / kInt4PerWord;
  std::vector<int8_t> out(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const uint32_t word = static_cast<uint32_t>(packed[r * words + c / kInt4PerWord]);
      out[r * cols + c] = static_cast<int8_t>(static_cast<int>((word >> (4 * (c % kInt4PerWord))) & 0xFu) + kInt4Min);
    }
  return out;
}

Int4Weight int4_layout(int64_t rows, int64_t cols, int64_t group_size, FloatType scale_type) {
  if (rows <= 0 || cols <= 0 || group_size <= 0)
    throw Error("quantize_int4: the weight (" + std::to_string(rows) + ", " + std::to_string(cols) +
                ") and the group size " + std::to_string(group_size) + " must be positive.");
  if (cols % group_size != 0)
    throw Error("quantize_int4: the group size " + std::to_string(group_size) + " does not divide the input width " +
                std::to_string(cols) + " (compressed-tensors requires it to).");
  Int4Weight q;
  q.rows = rows, q.cols = cols, q.group_size = group_size, q.scale_type = scale_type;
  q.scales.assign(static_cast<size_t>(rows * q.groups_per_row()), 0.0f);
  q.packed.assign(static_cast<size_t>(rows * q.words_per_row()), 0);
  return q;
}

namespace {

constexpr float kRint = 0x1.8p23f;  // (x + kRint) - kRint: x rounded to an integer, halves to even (|x| < 2^22)

// Running maximum of |x| and whether some x was Inf or NaN, over one value or four.
template <class F>
void absmax_step(F x, F& m, typename BitsOf<F>::type& nonfinite) {
  const F a = abs_of(x);
  m = a > m ? a : m;
  nonfinite = a <= FLT_MAX ? nonfinite : splat<typename BitsOf<F>::type>(1u);
}

// int4_code of x under scale s, as an integer-valued float, and, with kError, the error sums of
// w' = round_S(code * s) (an exact product rounded once): |x - w'|, |x|, |x - w'| / (|x| + 1e-8).
template <FloatType W, FloatType S, bool kError, class F>
F code_step(F x, float s, F& abs_sum, F& mag_sum, F& rel_sum) {
  F q = round_t<W>(x / s);
  q = q < float(kInt4Min) ? splat<F>(kInt4Min) : q;  // std::clamp's order
  q = float(kInt4Max) < q ? splat<F>(kInt4Max) : q;
  const F code = (q + kRint) - kRint;  // halves to even, as torch.round
  if constexpr (kError) {
    const F d = abs_of(x - round_t<S>(code * s)), a = abs_of(x);
    abs_sum += d;
    mag_sum += a;
    rel_sum += d / (a + 1e-8f);
  }
  return code;
}

}  // namespace

int int4_code(float x, float scale, FloatType w) {
  float unused = 0;
  switch (w) {
    case FloatType::f16: return static_cast<int>(code_step<FloatType::f16, FloatType::f32, false>(x, scale, unused, unused, unused));
    case FloatType::bf16: return static_cast<int>(code_step<FloatType::bf16, FloatType::f32, false>(x, scale, unused, unused, unused));
    default: return static_cast<int>(code_step<FloatType::f32, FloatType::f32, false>(x, scale, unused, unused, unused));
  }
}

namespace {

F4 load4(const float* p) {
  F4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

float lane_sum(F4 v) { return (v[0] + v[1]) + (v[2] + v[3]); }
float lane_max(F4 v) { return std::max(std::max(v[0], v[1]), std::max(v[2], v[3])); }

// One row group by group: its scales, its nibbles (code + 8) into `nibbles` (cols of them), and,
// with kError, each group's error sums (in fp32, four at a time, then added) into e. Returns
// whether every value was finite.
template <FloatType W, FloatType S, bool kError>
bool quantize_row(const float* row, int64_t cols, int64_t group, float* scales, uint8_t* nibbles, ops::NF4Error& e) {
  U4 nonfinite4{};
  uint32_t nonfinite = 0;
  for (int64_t g0 = 0; g0 < cols; g0 += group) {
    const float* x = row + g0;
    F4 m4{};
    float m = 0.0f;
    int64_t i = 0;
    for (; i + 4 <= group; i += 4) absmax_step(load4(x + i), m4, nonfinite4);
    for (; i < group; ++i) absmax_step(x[i], m, nonfinite);
    const float s = int4_scale(std::max(m, lane_max(m4)), S);
    *scales++ = s;
    uint8_t* c = nibbles + g0;
    F4 abs4{}, mag4{}, rel4{};
    float abs1 = 0, mag1 = 0, rel1 = 0;
    for (i = 0; i + 4 <= group; i += 4) {
      const I4 code = __builtin_convertvector(code_step<W, S, kError>(load4(x + i), s, abs4, mag4, rel4), I4);
      for (int k = 0; k < 4; ++k) c[i + k] = static_cast<uint8_t>(code[k] - kInt4Min);
    }
    for (; i < group; ++i)
      c[i] = static_cast<uint8_t>(static_cast<int>(code_step<W, S, kError>(x[i], s, abs1, mag1, rel1)) - kInt4Min);
    if constexpr (kError) {
      e.abs_sum += lane_sum(abs4) + abs1;
      e.mag_sum += lane_sum(mag4) + mag1;
      e.rel_sum += lane_sum(rel4) + rel1;
    }
  }
  for (int k = 0; k < 4; ++k) nonfinite |= nonfinite4[k];
  return nonfinite == 0;
}

template <FloatType W, FloatType S, bool kError>
std::optional<ops::NF4Error> quantize_rows(const float* w, int64_t r0, int64_t r1, Int4Weight& q) {
  const int64_t cols = q.cols, words = q.words_per_row(), groups = q.groups_per_row();
  std::vector<uint8_t> nibbles(static_cast<size_t>(words * kInt4PerWord), 0);  // a row's last word padded with 0
  ops::NF4Error e;
  bool finite = true;
  for (int64_t r = r0; r < r1; ++r) {
    finite &= quantize_row<W, S, kError>(w + r * cols, cols, q.group_size, q.scales.data() + r * groups,
                                         nibbles.data(), e);
    int32_t* out = q.packed.data() + r * words;
    for (int64_t j = 0; j < words; ++j) {  // pack_to_int32: the first column in the lowest nibble
      uint32_t word = 0;
      for (int k = 0; k < kInt4PerWord; ++k) word |= uint32_t{nibbles[j * kInt4PerWord + k]} << (4 * k);
      out[j] = static_cast<int32_t>(word);
    }
  }
  e.n = (r1 - r0) * cols;
  if (!finite) return std::nullopt;
  return e;
}

// The instantiation for the run-time types.
template <bool kError>
std::optional<ops::NF4Error> quantize_rows(const float* w, FloatType wt, int64_t r0, int64_t r1, Int4Weight& q) {
  const auto with_s = [&]<FloatType W>() {
    switch (q.scale_type) {
      case FloatType::f16: return quantize_rows<W, FloatType::f16, kError>(w, r0, r1, q);
      case FloatType::bf16: return quantize_rows<W, FloatType::bf16, kError>(w, r0, r1, q);
      default: return quantize_rows<W, FloatType::f32, kError>(w, r0, r1, q);
    }
  };
  switch (wt) {
    case FloatType::f16: return with_s.template operator()<FloatType::f16>();
    case FloatType::bf16: return with_s.template operator()<FloatType::bf16>();
    default: return with_s.template operator()<FloatType::f32>();
  }
}

}  // namespace

std::optional<ops::NF4Error> quantize_int4_rows(const float* w, FloatType weight_type, int64_t row_begin,
                                                int64_t row_end, Int4Weight& q) {
  if (row_begin < 0 || row_end < row_begin || row_end > q.rows ||
      q.packed.size() != static_cast<size_t>(q.rows * q.words_per_row()) ||
      q.scales.size() != static_cast<size_t>(q.rows * q.groups_per_row()))
    throw Error("quantize_int4_rows: rows [" + std::to_string(row_begin) + ", " + std::to_string(row_end) +
                ") of a weight laid out for " + std::to_string(q.rows) + " rows (use int4_layout).");
  return quantize_rows<true>(w, weight_type, row_begin, row_end, q);
}

Int4Weight quantize_int4(const float* w, int64_t rows, int64_t cols, int64_t group_size,
                         FloatType weight_type, FloatType scale_type) {
  Int4Weight q = int4_layout(rows, cols, group_size, scale_type);
  quantize_rows<false>(w, weight_type, 0, rows, q);
  return q;
}

void dequantize_int4(const int32_t* packed, const float* scales, int64_t rows, int64_t cols,
                     int64_t group_size, FloatType scale_type, float* out) {
  const int64_t words = (cols + kInt4PerWord - 1) / kInt4PerWord, groups = cols / group_size;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const uint32_t word = static_cast<uint32_t>(packed[r * words + c / kInt4PerWord]);
      const int code = static_cast<int>((word >> (4 * (c % kInt4PerWord))) & 0xFu) + kInt4Min;
      // code (4 bits) x a 16-bit scale is exact in fp32, then rounded once to S (fp32 scales: once in fp32).
      out[r * cols + c] = round_to(scale_type, static_cast<float>(code) * scales[r * groups + c / group_size]);
    }
}

std::vector<float> dequantize_int4(const Int4Weight& q) {
  std::vector<float> out(static_cast<size_t>(q.rows * q.cols));
  dequantize_int4(q.packed.data(), q.scales.data(), q.rows, q.cols, q.group_size, q.scale_type, out.data());
  return out;
}

}  // namespace magellano::quant
