#include "magellano/io/st_dtype.hpp"

#include <CL/cl_half.h>

#include <bit>

namespace magellano::io {

namespace {
struct Entry {
  StDType dtype;
  const char* name;
  size_t size;
};
constexpr Entry kTable[] = {
    {StDType::F32, "F32", 4}, {StDType::F16, "F16", 2}, {StDType::BF16, "BF16", 2},
    {StDType::U8, "U8", 1},   {StDType::I32, "I32", 4}, {StDType::I64, "I64", 8},
};
const Entry& entry(StDType t) {
  for (const Entry& e : kTable)
    if (e.dtype == t) return e;
  return kTable[0];  // unreachable for valid enum values
}
}  // namespace

const char* st_dtype_name(StDType t) { return entry(t).name; }
size_t st_dtype_size(StDType t) { return entry(t).size; }

std::optional<StDType> st_dtype_from_name(const std::string& name) {
  for (const Entry& e : kTable)
    if (name == e.name) return e.dtype;
  return std::nullopt;
}

float f16_to_f32(uint16_t bits) { return cl_half_to_float(bits); }
uint16_t f32_to_f16(float value) { return cl_half_from_float(value, CL_HALF_RTE); }

float bf16_to_f32(uint16_t bits) { return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16); }

uint16_t f32_to_bf16(float value) {
  const uint32_t u = std::bit_cast<uint32_t>(value);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);  // quiet NaN
  const uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);  // round half to even
  return static_cast<uint16_t>((u + rounding) >> 16);
}

}  // namespace magellano::io
