// ggml_encode: F32 copied, F16 rounded to nearest even, Q8_0 as ggml's reference quantizer.
#include "magellano/io/ggml_quants.hpp"

#include <cmath>
#include <cstring>

#include "magellano/io/st_dtype.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::io {

void quantize_q8_0_block(const float* x, uint8_t* out) {
  float amax = 0.0f;
  for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;  // fp32 division, as ggml's amax / ((1 << 7) - 1)
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  const uint16_t dh = f32_to_f16(d);
  std::memcpy(out, &dh, 2);
  for (int j = 0; j < 32; ++j) {
    const float v = x[j] * id;  // one fp32 product, then roundf
    out[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::roundf(v)));
  }
}

void ggml_encode(GgmlType type, const float* x, int64_t n, std::vector<uint8_t>& out) {
  const size_t at = out.size();
  switch (type) {
    case GgmlType::f32:
      out.resize(at + static_cast<size_t>(n) * 4);
      std::memcpy(out.data() + at, x, static_cast<size_t>(n) * 4);
      return;
    case GgmlType::f16:
      out.resize(at + static_cast<size_t>(n) * 2);
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_f16(x[i]);
        std::memcpy(out.data() + at + 2 * i, &h, 2);
      }
      return;
    case GgmlType::q8_0:
      if (n % 32 != 0)
        throw Error("Q8_0: " + std::to_string(n) + " values are not a whole number of blocks of 32.");
      out.resize(at + static_cast<size_t>(n / 32) * 34);
      for (int64_t b = 0; b < n / 32; ++b) quantize_q8_0_block(x + 32 * b, out.data() + at + 34 * b);
      return;
  }
}

}  // namespace magellano::io
