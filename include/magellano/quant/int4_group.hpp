// Symmetric group-wise int4 weights as compressed-tensors (the library behind llm-compressor's
// W4A16 scheme and vLLM's reader of its files) computes them, on the host. The file layout and
// where each rule comes from are in io/int4_safetensors.hpp; this file is the arithmetic.
//
// A weight w: (rows, cols) row-major ("out" x "in" of a Linear), groups of G consecutive columns
// of one row (G divides cols: compressed-tensors refuses anything else, see the format file):
//   scale[r][g] = round_S(max |w| over the group / 7.5), or eps(S) where that is 0
//                 7.5 = (q_max - q_min) / 2 with [q_min, q_max] = [-8, 7]; round_S rounds to the
//                 scale's float type S, nearest even, saturating at S's largest value (the
//                 division is correctly rounded: torch divides a 16-bit tensor in fp32 and rounds
//                 once more, which for / and 11 or 8 bits of mantissa gives the same value as one
//                 rounding); eps(S) = torch.finfo(S).eps: 2^-10 (fp16), 2^-7 (bf16), 2^-23 (fp32).
//                 (compressed-tensors 0.20; releases up to 0.12 clamped every scale to at least
//                 2^-23 instead, which differs only for groups whose largest weight is below 1e-6.)
//   code[r][c]  = round_half_even(clamp(round_W(w / scale), -8, 7)), where round_W rounds the
//                 quotient to the weight's own float type W (torch computes x / scale in x's
//                 dtype: a bf16 weight's quotient is a bf16 number before it is rounded to an
//                 integer). torch.round rounds halves to even.
//   w'[r][c]    = round_S(code * scale)  (dequantize: x_q.to(scale.dtype) * scale)
// Packing (pack_to_int32, packed_dim 1): code + 8 as 4 unsigned bits; column c of a row goes to
// word c / 8, bits [4 (c % 8), 4 (c % 8) + 4): the first column in the lowest nibble. A row's
// last word is padded with nibbles of 0 when 8 does not divide cols. The words are int32 (two's
// complement: a top nibble >= 8 makes the word negative).
//
// Why the host: quantizing is one pass over the weights (a read, a division and a shift per
// value), bounded by reading the file; the device adds a copy each way and nothing else. Rows
// are independent, so blocks of rows may be quantized on several threads at once
// (quantize_int4_rows; io/quantize_file.cpp does). The roundings to fp16 and bf16 are bit
// operations (no F16C assumed), equal to the correctly rounded conversions for every input.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "magellano/ops/nf4.hpp"

namespace magellano::quant {

// The float type a value is rounded to, as torch rounds a tensor of that dtype.
enum class FloatType { f32, f16, bf16 };

// v rounded to t (nearest even; f32: v itself). Values beyond the type's range become +-Inf.
float round_to(FloatType t, float v);

constexpr int kInt4Min = -8, kInt4Max = 7;
constexpr int kInt4PerWord = 8;      // 4-bit values per int32
// torch.finfo(t).eps: the scale of an all-zero group.
float float_eps(FloatType t);

// The scale of a group whose largest magnitude is `absmax`, in type s (exactly representable there).
float int4_scale(float absmax, FloatType s);
// The code of x under scale s, the quotient rounded to the weight's type w first.
int int4_code(float x, float scale, FloatType w);

// One (rows, cols) weight quantized. scales hold values of scale_type (as floats).
struct Int4Weight {
  int64_t rows = 0, cols = 0, group_size = 0;
  FloatType scale_type = FloatType::f16;
  std::vector<int32_t> packed;  // rows * words_per_row()
  std::vector<float> scales;    // rows * groups_per_row()
  int64_t words_per_row() const { return (cols + kInt4PerWord - 1) / kInt4PerWord; }
  int64_t groups_per_row() const { return group_size > 0 ? cols / group_size : 0; }
};

// Quantizes w (rows * cols values, finite). weight_type: the dtype w had in its file (its values
// are exactly representable there); scale_type: the dtype of the stored scales. Throws
// magellano::Error when group_size does not divide cols or a size is not positive.
Int4Weight quantize_int4(const float* w, int64_t rows, int64_t cols, int64_t group_size,
                         FloatType weight_type, FloatType scale_type);

// An Int4Weight of these sizes, its words and scales zero (to be filled by quantize_int4_rows).
// Throws as quantize_int4 does for sizes it refuses.
Int4Weight int4_layout(int64_t rows, int64_t cols, int64_t group_size, FloatType scale_type);

// Rows [row_begin, row_end) of w (q.rows * q.cols values: the whole weight) quantized into q's
// words and scales (q from int4_layout), exactly as quantize_int4 does. Returns those rows'
// reconstruction error against w' = dequantize(q) in ops::NF4Error's sums (|w - w'|, |w|,
// |w - w'| / (|w| + 1e-8), each in fp32 per value, summed over a group in fp32 and over the
// groups in float64, in order), or nullopt when one of those rows holds Inf or NaN.
std::optional<ops::NF4Error> quantize_int4_rows(const float* w, FloatType weight_type, int64_t row_begin,
                                                int64_t row_end, Int4Weight& q);

// pack_to_int32 / unpack_from_int32 along the columns: codes in [-8, 7], rows * cols of them.
std::vector<int32_t> pack_int4(const int8_t* codes, int64_t rows, int64_t cols);
std::vector<int8_t> unpack_int4(const int32_t* packed, int64_t rows, int64_t cols);

// w' (rows * cols) from packed words and scales (rows * cols / group_size values of scale_type).
void dequantize_int4(const int32_t* packed, const float* scales, int64_t rows, int64_t cols,
                     int64_t group_size, FloatType scale_type, float* out);
std::vector<float> dequantize_int4(const Int4Weight& q);

}  // namespace magellano::quant
