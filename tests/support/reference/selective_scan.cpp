#include <cmath>

#include "reference.hpp"

namespace mgtest::ref {
Vec scan(const ScanDims& s, const std::vector<Vec>& x) {
  const Vec &u = x[0], &delta = x[1], &A = x[2], &Bm = x[3], &Cm = x[4], &D = x[5];
  Vec out(s.b * s.l * s.e);
  for (int64_t b = 0; b < s.b; ++b)
    for (int64_t e = 0; e < s.e; ++e) {
      Vec h(s.n, 0.0);
      for (int64_t t = 0; t < s.l; ++t) {
        const int64_t i = (b * s.l + t) * s.e + e, bc = (b * s.l + t) * s.n;
        double dt = delta[i] + (s.bias ? x[7][e] : 0.0);
        if (s.softplus) dt = softplus(dt);
        double y = D[e] * u[i];
        for (int64_t n = 0; n < s.n; ++n) {
          h[n] = std::exp(dt * A[e * s.n + n]) * h[n] + dt * Bm[bc + n] * u[i];
          y += Cm[bc + n] * h[n];
        }
        if (s.z) y *= x[6][i] * sigmoid(x[6][i]);
        out[i] = y;
      }
    }
  return out;
}

std::vector<Vec> scan_bwd(const ScanDims& s, const std::vector<Vec>& x, const Vec& dout) {
  const Vec &u = x[0], &delta = x[1], &A = x[2], &Bm = x[3], &Cm = x[4], &D = x[5];
  std::vector<Vec> g(8);
  for (int k = 0; k < 8; ++k) g[k] = Vec(x[k].size(), 0.0);
  for (int64_t b = 0; b < s.b; ++b)
    for (int64_t e = 0; e < s.e; ++e) {
      std::vector<Vec> H(s.l + 1, Vec(s.n, 0.0));  // H[t + 1] = h_t, H[0] = 0
      Vec dts(s.l);
      for (int64_t t = 0; t < s.l; ++t) {
        const int64_t i = (b * s.l + t) * s.e + e, bc = (b * s.l + t) * s.n;
        double dt = delta[i] + (s.bias ? x[7][e] : 0.0);
        if (s.softplus) dt = softplus(dt);
        dts[t] = dt;
        for (int64_t n = 0; n < s.n; ++n)
          H[t + 1][n] = std::exp(dt * A[e * s.n + n]) * H[t][n] + dt * Bm[bc + n] * u[i];
      }
      Vec G(s.n, 0.0);  // dL/dh_t carried back from t + 1
      for (int64_t t = s.l - 1; t >= 0; --t) {
        const int64_t i = (b * s.l + t) * s.e + e, bc = (b * s.l + t) * s.n;
        const double dt = dts[t], raw = delta[i] + (s.bias ? x[7][e] : 0.0);
        double y = D[e] * u[i];
        for (int64_t n = 0; n < s.n; ++n) y += Cm[bc + n] * H[t + 1][n];
        double dy = dout[i];
        if (s.z) {
          const double zz = x[6][i], sg = sigmoid(zz);
          g[6][i] += dout[i] * y * sg * (1 + zz * (1 - sg));
          dy *= zz * sg;
        }
        g[5][e] += dy * u[i];
        g[0][i] += dy * D[e];
        double ddt = 0;
        for (int64_t n = 0; n < s.n; ++n) {
          const double a = A[e * s.n + n], an = std::exp(dt * a);
          const double gn = G[n] + dy * Cm[bc + n];
          g[4][bc + n] += dy * H[t + 1][n];
          g[3][bc + n] += gn * dt * u[i];
          g[0][i] += gn * dt * Bm[bc + n];
          ddt += gn * (a * an * H[t][n] + Bm[bc + n] * u[i]);
          g[2][e * s.n + n] += gn * dt * an * H[t][n];
          G[n] = gn * an;
        }
        const double draw = s.softplus ? ddt * sigmoid(raw) : ddt;
        g[1][i] += draw;
        if (s.bias) g[7][e] += draw;
      }
    }
  return g;
}

}  // namespace mgtest::ref
