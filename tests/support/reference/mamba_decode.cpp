#include <cmath>

#include "reference.hpp"

namespace mgtest::ref {

Vec mamba_conv_step(const Vec& xz, int64_t b, int64_t e, const Vec& w, int64_t width, const Vec& bias, Vec& conv) {
  Vec xc(b * e);
  for (int64_t r = 0; r < b; ++r)
    for (int64_t c = 0; c < e; ++c) {
      double* s = conv.data() + (r * e + c) * (width - 1);  // no element at all with width 1
      const double x = xz[r * 2 * e + c];
      double acc = bias.empty() ? 0.0 : bias[c];
      for (int64_t j = 0; j + 1 < width; ++j) acc += w[c * width + j] * s[j];
      acc += w[c * width + width - 1] * x;
      for (int64_t j = 0; j + 2 < width; ++j) s[j] = s[j + 1];
      if (width > 1) s[width - 2] = x;
      xc[r * e + c] = silu(acc);
    }
  return xc;
}

Vec mamba_ssm_step(const Vec& xc, const Vec& dbc, const Vec& dt_w, const Vec& dt_b, const Vec& A, const Vec& D,
                   const Vec& xz, Vec& h, int64_t b, int64_t e, int64_t r, int64_t n) {
  Vec y(b * e);
  const int64_t s = r + 2 * n;
  for (int64_t i = 0; i < b; ++i)
    for (int64_t c = 0; c < e; ++c) {
      double dt = dt_b[c];
      for (int64_t j = 0; j < r; ++j) dt += dt_w[c * r + j] * dbc[i * s + j];
      dt = softplus(dt);
      const double x = xc[i * e + c];
      double acc = D[c] * x;
      for (int64_t j = 0; j < n; ++j) {
        double& hn = h[(i * e + c) * n + j];
        hn = std::exp(dt * A[c * n + j]) * hn + dt * dbc[i * s + r + j] * x;
        acc += dbc[i * s + r + n + j] * hn;
      }
      y[i * e + c] = acc * silu(xz[i * 2 * e + e + c]);
    }
  return y;
}

}  // namespace mgtest::ref
