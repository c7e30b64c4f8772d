#include "reference.hpp"

#include <cmath>

namespace mgtest::ref {
namespace {
double sigm(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double softplus(double x) { return std::log1p(std::exp(x)); }
}  // namespace

Vec linear(const Vec& x, int64_t m, int64_t k, const Vec& w, int64_t n, const Vec& b) {
  Vec y(m * n);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = b.empty() ? 0.0 : b[j];
      for (int64_t q = 0; q < k; ++q) s += x[i * k + q] * w[j * k + q];
      y[i * n + j] = s;
    }
  return y;
}

void linear_bwd(const Vec& x, int64_t m, int64_t k, const Vec& w, int64_t n, const Vec& dy,
                Vec& dx, Vec& dw, Vec* db) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      const double g = dy[i * n + j];
      if (db) (*db)[j] += g;
      for (int64_t q = 0; q < k; ++q) {
        dx[i * k + q] += g * w[j * k + q];
        dw[j * k + q] += g * x[i * k + q];
      }
    }
}

Vec conv(const Vec& x, int64_t b, int64_t l, int64_t c, const Vec& w, int64_t width, const Vec& bias) {
  Vec y(b * l * c);
  for (int64_t bb = 0; bb < b; ++bb)
    for (int64_t t = 0; t < l; ++t)
      for (int64_t ch = 0; ch < c; ++ch) {
        double s = bias[ch];
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
        dbias[ch] += g;
        for (int64_t k = 0; k < width; ++k) {
          const int64_t src = t - (width - 1) + k;
          if (src < 0) continue;
          dw[ch * width + k] += g * x[(bb * l + src) * c + ch];
          dx[(bb * l + src) * c + ch] += g * w[ch * width + k];
        }
      }
}

Vec silu(const Vec& x) {
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * sigm(x[i]);
  return y;
}

void silu_bwd(const Vec& x, const Vec& dy, Vec& dx) {
  for (size_t i = 0; i < x.size(); ++i) {
    const double s = sigm(x[i]);
    dx[i] += dy[i] * s * (1 + x[i] * (1 - s));
  }
}

Vec rmsnorm(const Vec& x, int64_t rows, int64_t d, const Vec& w, double eps) {
  Vec y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t j = 0; j < d; ++j) ss += x[r * d + j] * x[r * d + j];
    const double rs = 1.0 / std::sqrt(ss / d + eps);
    for (int64_t j = 0; j < d; ++j) y[r * d + j] = x[r * d + j] * rs * w[j];
  }
  return y;
}

void rmsnorm_bwd(const Vec& x, int64_t rows, int64_t d, const Vec& w, double eps, const Vec& dy,
                 Vec& dx, Vec& dw) {
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0, dot = 0;
    for (int64_t j = 0; j < d; ++j) ss += x[r * d + j] * x[r * d + j];
    const double rs = 1.0 / std::sqrt(ss / d + eps);
    for (int64_t j = 0; j < d; ++j) {
      dw[j] += dy[r * d + j] * x[r * d + j] * rs;
      dot += dy[r * d + j] * w[j] * x[r * d + j];
    }
    for (int64_t j = 0; j < d; ++j)
      dx[r * d + j] += rs * dy[r * d + j] * w[j] - x[r * d + j] * rs * rs * rs * dot / d;
  }
}

Vec cols(const Vec& x, int64_t rows, int64_t total, int64_t from, int64_t width) {
  Vec y(rows * width);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < width; ++j) y[r * width + j] = x[r * total + from + j];
  return y;
}

void cols_bwd(Vec& dx, int64_t rows, int64_t total, int64_t from, int64_t width, const Vec& dy) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < width; ++j) dx[r * total + from + j] += dy[r * width + j];
}

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
        if (s.z) y *= x[6][i] * sigm(x[6][i]);
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
          const double zz = x[6][i], sg = sigm(zz);
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
        const double draw = s.softplus ? ddt * sigm(raw) : ddt;
        g[1][i] += draw;
        if (s.bias) g[7][e] += draw;
      }
    }
  return g;
}

}  // namespace mgtest::ref
