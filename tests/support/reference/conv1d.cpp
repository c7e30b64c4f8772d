#include "reference.hpp"

namespace mgtest::ref {

Vec conv(const Vec& x, int64_t b, int64_t l, int64_t c, const Vec& w, int64_t width, const Vec& bias) {
  Vec y(b * l * c);
  for (int64_t bb = 0; bb < b; ++bb)
    for (int64_t t = 0; t < l; ++t)
      for (int64_t ch = 0; ch < c; ++ch) {
        double s = bias.empty() ? 0.0 : bias[ch];
        for (int64_t k = 0; k < width; ++k) {
          const int64_t src = t - (width - 1) + k;
          if (src >= 0) s += w[ch * width + k] * x[(bb * l + src) * c + ch];
        }
        y[(bb * l + t) * c + ch] = s;
      }
  return y;
}

void conv_bwd(const Vec& x, int64_t b, int64_t l, int64_t c, const Vec& w, int64_t width,
              const Vec& dy, Vec& dx, Vec& dw, Vec& dbias) {
  for (int64_t bb = 0; bb < b; ++bb)
    for (int64_t t = 0; t < l; ++t)
      for (int64_t ch = 0; ch < c; ++ch) {
        const double g = dy[(bb * l + t) * c + ch];
        if (!dbias.empty()) dbias[ch] += g;
        for (int64_t k = 0; k < width; ++k) {
          const int64_t src = t - (width - 1) + k;
          if (src < 0) continue;
          dw[ch * width + k] += g * x[(bb * l + src) * c + ch];
          dx[(bb * l + src) * c + ch] += g * w[ch * width + k];
        }
      }
}

}  // namespace mgtest::ref
