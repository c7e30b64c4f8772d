// Encoding float values as the ggml tensor types a GGUF file holds (io/gguf_writer.hpp):
//   F32   the floats, little-endian
//   F16   IEEE binary16, rounded to nearest even (ggml's GGML_FP32_TO_FP16, numpy's astype)
//   Q8_0  blocks of 32 values: fp16 scale d, then 32 int8 q, value ≈ d · q. ggml's reference
//         (quantize_row_q8_0_ref in ggml-quants.c, and gguf-py's numpy version), in fp32:
//           amax = max |x|;  d = amax / 127;  id = d ? 1 / d : 0;  d stored as fp16(d);
//           q[j] = roundf(x[j] · id)   (round half away from zero)
//         so a block's largest |x| becomes ±127 and an all-zero block has d = 0.
#pragma once
#include <cstdint>
#include <vector>

#include "magellano/io/gguf_writer.hpp"

namespace magellano::io {

// Appends the encoding of x[0, n) to out. Q8_0: n must be a multiple of 32 (throws otherwise).
void ggml_encode(GgmlType type, const float* x, int64_t n, std::vector<uint8_t>& out);

// One Q8_0 block: 32 values -> 34 bytes at out (u16 fp16 scale, then 32 int8).
void quantize_q8_0_block(const float* x, uint8_t* out);

}  // namespace magellano::io
