#include <algorithm>
#include <cmath>

#include "reference.hpp"

namespace mgtest::ref {

namespace {

int fraction_bits(FloatType t) { return t == FloatType::f16 ? 10 : t == FloatType::bf16 ? 7 : 23; }
int min_exponent(FloatType t) { return t == FloatType::f16 ? -14 : -126; }  // of the smallest normal
double max_finite(FloatType t) {
  return std::ldexp(2.0 - std::ldexp(1.0, -fraction_bits(t)), t == FloatType::f16 ? 15 : 127);
}
double eps(FloatType t) { return std::ldexp(1.0, -fraction_bits(t)); }  // torch.finfo(t).eps

}  // namespace

double round_float(double v, FloatType t) {
  if (v == 0.0 || !std::isfinite(v)) return v;
  int e = 0;
  std::frexp(v, &e);  // |v| in [2^(e-1), 2^e)
  const double ulp = std::ldexp(1.0, std::max(e - 1, min_exponent(t)) - fraction_bits(t));
  const double r = std::nearbyint(v / ulp) * ulp;  // v / ulp is exact; nearbyint: halves to even
  return std::fabs(r) > max_finite(t) ? std::copysign(INFINITY, v) : r;  // e.g. fp16: 65520 and above
}

double round_f16(double v) { return round_float(v, FloatType::f16); }

Int4Ref int4_quantize(const Vec& w, int64_t rows, int64_t cols, int64_t g, FloatType wt, FloatType st) {
  Int4Ref q;
  const int64_t groups = cols / g;
  q.codes.resize(rows * cols);
  q.scales.resize(rows * groups);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < groups; ++k) {
      double m = 0.0;
      for (int64_t i = 0; i < g; ++i) m = std::max(m, std::fabs(w[r * cols + k * g + i]));
      // absmax / 7.5 rounded to the scale's type (saturating at its largest value); 0 becomes its eps.
      double s = round_float(std::min(m / 7.5, max_finite(st)), st);
      if (s == 0.0) s = eps(st);
      q.scales[r * groups + k] = s;
      for (int64_t i = 0; i < g; ++i) {
        const int64_t c = r * cols + k * g + i;
        // w / s rounded to the weight's type, clamped, rounded to an integer, halves to even.
        const double t = std::clamp(round_float(w[c] / s, wt), -8.0, 7.0);
        q.codes[c] = static_cast<int>(std::nearbyint(t));
      }
    }
  return q;
}

Vec int4_dequantize(const Int4Ref& q, int64_t rows, int64_t cols, int64_t g, FloatType st) {
  Vec out(rows * cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      out[r * cols + c] = round_float(q.codes[r * cols + c] * q.scales[r * (cols / g) + c / g], st);
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
