// Element types of the safetensors format, spelled as the format spells them ("F32", "BF16", ...),
// and the host-side conversions of the 16-bit float types to f32.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace magellano::io {

enum class StDType { F32, F16, BF16, U8, I32, I64 };

// "F32", "F16", "BF16", "U8", "I32", "I64".
const char* st_dtype_name(StDType t);
// The dtype a header names, or nullopt for a name this library does not read (e.g. "F64").
std::optional<StDType> st_dtype_from_name(const std::string& name);
// Bytes per element: 4, 2, 2, 1, 4, 8.
size_t st_dtype_size(StDType t);

// IEEE binary16 bits -> float (exact: every half is a float).
float f16_to_f32(uint16_t bits);
// bfloat16 bits -> float (exact: bfloat16 is the top half of a float).
float bf16_to_f32(uint16_t bits);
// float -> binary16 / bfloat16 bits, rounding to nearest even (NaN stays NaN).
uint16_t f32_to_f16(float value);
uint16_t f32_to_bf16(float value);

}  // namespace magellano::io
