#include "magellano/quant/int4_group.hpp"

#include <CL/cl_half.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <string>

#include "magellano/runtime/error.hpp"

namespace magellano::quant {

namespace {

float round_bf16(float v) {
  const uint32_t u = std::bit_cast<uint32_t>(v);
  if ((u & 0x7fffffffu) > 0x7f800000u) return v;  // NaN
  const uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);  // round half to even
  return std::bit_cast<float>(((u + rounding) >> 16) << 16);
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
    case FloatType::f16: return cl_half_to_float(cl_half_from_float(v, CL_HALF_RTE));
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

int int4_code(float x, float scale, FloatType w) {
  const float q = std::clamp(round_to(w, x / scale), static_cast<float>(kInt4Min), static_cast<float>(kInt4Max));
  return static_cast<int>(std::nearbyint(q));  // the default rounding mode: halves to even, as torch.round
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

Int4Weight quantize_int4(const float* w, int64_t rows, int64_t cols, int64_t group_size,
                         FloatType weight_type, FloatType scale_type) {
  if (rows <= 0 || cols <= 0 || group_size <= 0)
    throw Error("quantize_int4: the weight (" + std::to_string(rows) + ", " + std::to_string(cols) +
                ") and the group size " + std::to_string(group_size) + " must be positive.");
  if (cols % group_size != 0)
    throw Error("quantize_int4: the group size " + std::to_string(group_size) + " does not divide the input width " +
                std::to_string(cols) + " (compressed-tensors requires it to).");
  Int4Weight q;
  q.rows = rows, q.cols = cols, q.group_size = group_size, q.scale_type = scale_type;
  const int64_t groups = cols / group_size;
  q.scales.resize(static_cast<size_t>(rows * groups));
  std::vector<int8_t> codes(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < groups; ++g) {
      const float* x = w + r * cols + g * group_size;
      float m = 0.0f;
      for (int64_t i = 0; i < group_size; ++i) m = std::max(m, std::fabs(x[i]));
      const float s = int4_scale(m, scale_type);
      q.scales[r * groups + g] = s;
      int8_t* c = codes.data() + r * cols + g * group_size;
      for (int64_t i = 0; i < group_size; ++i) c[i] = static_cast<int8_t>(int4_code(x[i], s, weight_type));
    }
  q.packed = pack_int4(codes.data(), rows, cols);
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
