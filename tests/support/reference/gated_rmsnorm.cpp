#include <cmath>

#include "reference.hpp"

namespace mgtest::ref {

Vec gated_rms_norm(const Vec& y, const Vec& z, const Vec& w, int64_t rows, int64_t d, int64_t groups,
                   double eps) {
  const int64_t gs = d / groups;
  Vec out(rows * d);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t o = r * d + g * gs;
      double ss = 0.0;
      for (int64_t c = 0; c < gs; ++c) {
        const double u = y[o + c] * silu(z[o + c]);
        ss += u * u;
      }
      const double rs = 1.0 / std::sqrt(ss / gs + eps);
      for (int64_t c = 0; c < gs; ++c) out[o + c] = y[o + c] * silu(z[o + c]) * rs * w[g * gs + c];
    }
  return out;
}

std::vector<Vec> gated_rms_norm_bwd(const Vec& y, const Vec& z, const Vec& w, int64_t rows, int64_t d,
                                    int64_t groups, double eps, const Vec& dout) {
  const int64_t gs = d / groups;
  Vec dy(rows * d), dz(rows * d), dw(d, 0.0), u(gs);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t o = r * d + g * gs;
      double ss = 0.0, dot = 0.0;
      for (int64_t c = 0; c < gs; ++c) {
        u[c] = y[o + c] * silu(z[o + c]);
        ss += u[c] * u[c];
        dot += dout[o + c] * w[g * gs + c] * u[c];
      }
      const double rs = 1.0 / std::sqrt(ss / gs + eps);
      for (int64_t c = 0; c < gs; ++c) {
        // out = u rs w, rs = (mean u^2 + eps)^-1/2: du = rs (dout w - u rs^2 mean(dout w u))
        const double du = rs * (dout[o + c] * w[g * gs + c] - u[c] * rs * rs * dot / gs);
        dy[o + c] = du * silu(z[o + c]);
        dz[o + c] = du * y[o + c] * silu_grad(z[o + c]);
        dw[g * gs + c] += dout[o + c] * u[c] * rs;
      }
    }
  return {dy, dz, dw};
}

}  // namespace mgtest::ref
