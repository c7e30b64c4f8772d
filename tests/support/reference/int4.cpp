#include <algorithm>
#include <cmath>

#include "reference.hpp"

namespace mgtest::ref {

double round_f16(double v) {
  if (v == 0.0 || !std::isfinite(v)) return v;
  int e = 0;
  std::frexp(v, &e);                                // |v| = m 2^e, m in [0.5, 1)
  const double ulp = std::ldexp(1.0, std::max(e - 11, -24));  // 11 significant bits; subnormals 2^-24
  const double r = std::nearbyint(v / ulp) * ulp;   // v / ulp is exact; nearbyint: halves to even
  return std::fabs(r) > 65504.0 ? std::copysign(INFINITY, v) : r;  // 65520 and above round to Inf
}

Int4Ref int4_quantize(const Vec& w, int64_t rows, int64_t cols, int64_t g) {
  Int4Ref q;
  const int64_t groups = cols / g;
  q.codes.resize(rows * cols);
  q.scales.resize(rows * groups);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < groups; ++k) {
      double m = 0.0;
      for (int64_t i = 0; i < g; ++i) m = std::max(m, std::fabs(w[r * cols + k * g + i]));
      // absmax / 7.5 rounded to fp16 (saturating at 65504); 0 becomes fp16's eps 2^-10.
      double s = round_f16(std::min(m / 7.5, 65504.0));
      if (s == 0.0) s = std::ldexp(1.0, -10);
      q.scales[r * groups + k] = s;
      for (int64_t i = 0; i < g; ++i) {
        const int64_t c = r * cols + k * g + i;
        // w / s rounded to fp32 (the weight's type), clamped, rounded to an integer, halves to even.
        const double t = std::clamp(static_cast<double>(static_cast<float>(w[c] / s)), -8.0, 7.0);
        q.codes[c] = static_cast<int>(std::nearbyint(t));
      }
    }
  return q;
}

Vec int4_dequantize(const Int4Ref& q, int64_t rows, int64_t cols, int64_t g) {
  Vec out(rows * cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      out[r * cols + c] = round_f16(q.codes[r * cols + c] * q.scales[r * (cols / g) + c / g]);
  return out;
}

std::vector<int> int4_unpack(const std::vector<int32_t>& words, int64_t rows, int64_t cols) {
  const int64_t per_row = (cols + 7) / 8;
  std::vector<int> codes(rows * cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const uint32_t word = static_cast<uint32_t>(words[r * per_row + c / 8]);
      codes[r * cols + c] = static_cast<int>((word >> (4 * (c % 8))) & 15u) - 8;
    }
  return codes;
}

}  // namespace mgtest::ref
