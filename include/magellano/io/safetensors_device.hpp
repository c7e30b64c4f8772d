// Moving tensors between the device and safetensors: to_st downloads a tensor's bytes as they
// are stored; load_into uploads a stored tensor into an existing device tensor of the same shape.
#pragma once
#include <string>

#include "magellano/io/safetensors.hpp"
#include "magellano/io/safetensors_set.hpp"
#include "magellano/tensor/tensor.hpp"

namespace magellano::io {

// The tensor's bytes, unchanged: f32 -> F32, f16 -> F16, u8 -> U8, i32 -> I32 (blocking read).
StTensor to_st(const Tensor& t);

// Reads `name` from `reader` into dst (blocking write). The stored shape must equal dst's shape
// exactly. Conversions: F32/F16/BF16 -> f32, F32/F16/BF16 -> f16 (rounded to nearest even),
// U8 -> u8, I32 -> i32. Anything else throws magellano::Error naming the tensor, and so does a
// floating-point value that is NaN or infinite (named with its element index): a damaged
// checkpoint is refused at load instead of evaluating to `loss nan`.
void load_into(const SafetensorsReader& reader, const std::string& name, const Tensor& dst);
// The same from whichever file of a checkpoint's set holds `name` (the caller's question "read
// tensor X into this device tensor"); a name the set lacks throws naming the set.
void load_into(const SafetensorsSet& weights, const std::string& name, const Tensor& dst);

// Throws Error "<what>: element i of n is NaN; ..." unless every value is finite.
void require_finite(const std::vector<float>& values, const std::string& what);

// Rows [row_begin, row_end) of `name` viewed as (rows, last dim) into dst (f32 or f16), whose
// last dim must be the tensor's and whose size the rows' (one part of a packed tensor, e.g. one
// expert of an (X, 2F, D) stack). Errors as load_into's.
void load_rows_into(const SafetensorsSet& weights, const std::string& name, int64_t row_begin, int64_t row_end,
                    const Tensor& dst);

}  // namespace magellano::io
