#include "ssd_reference.hpp"

#include <algorithm>

namespace mgtest::ref {
namespace {

double sigmoid(double v) { return 1.0 / (1.0 + std::exp(-v)); }

// Index helpers for the row-major layouts.
struct Idx {
  const SsdDims& s;
  int64_t x(int64_t b, int64_t t, int64_t h, int64_t p) const { return ((b * s.l + t) * s.h + h) * s.p + p; }
  int64_t dt(int64_t b, int64_t t, int64_t h) const { return (b * s.l + t) * s.h + h; }
  int64_t bc(int64_t b, int64_t t, int64_t g, int64_t n) const { return ((b * s.l + t) * s.g + g) * s.n + n; }
  int64_t group(int64_t h) const { return h / (s.h / s.g); }
};

}  // namespace

double ssd_dt(const SsdDims& s, double raw) {
  const double v = s.softplus && raw <= 20.0 ? std::log1p(std::exp(raw)) : raw;
  return std::min(std::max(v, s.lo), s.hi);
}

double ssd_dt_slope(const SsdDims& s, double raw) {
  const double v = s.softplus && raw <= 20.0 ? std::log1p(std::exp(raw)) : raw;
  if (v < s.lo || v > s.hi) return 0.0;
  return s.softplus && raw <= 20.0 ? sigmoid(raw) : 1.0;
}

Vec ssd_scan(const SsdDims& s, const std::vector<Vec>& in, Vec* final_state) {
  const Vec &x = in[0], &dt = in[1], &bias = in[2], &A_log = in[3], &Bm = in[4], &Cm = in[5], &D = in[6];
  const Idx ix{s};
  Vec y(x.size()), S(s.p * s.n);
  if (final_state) final_state->assign(s.b * s.h * s.p * s.n, 0.0);
  for (int64_t b = 0; b < s.b; ++b)
    for (int64_t h = 0; h < s.h; ++h) {
      const int64_t g = ix.group(h);
      const double A = -std::exp(A_log[h]);
      std::fill(S.begin(), S.end(), 0.0);
      for (int64_t t = 0; t < s.l; ++t) {
        const double step = ssd_dt(s, dt[ix.dt(b, t, h)] + bias[h]), decay = std::exp(step * A);
        for (int64_t p = 0; p < s.p; ++p) {
          const double xv = x[ix.x(b, t, h, p)];
          double out = s.has_D ? D[h] * xv : 0.0;
          for (int64_t n = 0; n < s.n; ++n) {
            double& st = S[p * s.n + n];
            st = decay * st + step * xv * Bm[ix.bc(b, t, g, n)];
            out += st * Cm[ix.bc(b, t, g, n)];
          }
          y[ix.x(b, t, h, p)] = out;
        }
      }
      if (final_state) std::copy(S.begin(), S.end(), final_state->begin() + (b * s.h + h) * s.p * s.n);
    }
  return y;
}

std::vector<Vec> ssd_scan_bwd(const SsdDims& s, const std::vector<Vec>& in, const Vec& dy) {
  const Vec &x = in[0], &dt = in[1], &bias = in[2], &A_log = in[3], &Bm = in[4], &Cm = in[5], &D = in[6];
  const Idx ix{s};
  std::vector<Vec> g(7);
  for (int k = 0; k < 7; ++k) g[k].assign(in[k].size(), 0.0);
  Vec &dx = g[0], &ddt = g[1], &dbias = g[2], &dA_log = g[3], &dB = g[4], &dC = g[5], &dD = g[6];
  const int64_t pn = s.p * s.n;
  Vec S((s.l + 1) * pn), G(pn);  // S[t + 1] = state after step t; G = dL/dS_t
  for (int64_t b = 0; b < s.b; ++b)
    for (int64_t h = 0; h < s.h; ++h) {
      const int64_t gr = ix.group(h);
      const double A = -std::exp(A_log[h]);
      std::fill(S.begin(), S.begin() + pn, 0.0);
      for (int64_t t = 0; t < s.l; ++t) {
        const double step = ssd_dt(s, dt[ix.dt(b, t, h)] + bias[h]), decay = std::exp(step * A);
        for (int64_t p = 0; p < s.p; ++p)
          for (int64_t n = 0; n < s.n; ++n)
            S[(t + 1) * pn + p * s.n + n] =
                decay * S[t * pn + p * s.n + n] + step * x[ix.x(b, t, h, p)] * Bm[ix.bc(b, t, gr, n)];
      }
      std::fill(G.begin(), G.end(), 0.0);
      for (int64_t t = s.l - 1; t >= 0; --t) {
        const double raw = dt[ix.dt(b, t, h)] + bias[h], step = ssd_dt(s, raw), decay = std::exp(step * A);
        double dstep = 0.0, ddecay = 0.0;
        for (int64_t p = 0; p < s.p; ++p) {
          const double xv = x[ix.x(b, t, h, p)], dyv = dy[ix.x(b, t, h, p)];
          if (s.has_D) {
            dD[h] += dyv * xv;
            dx[ix.x(b, t, h, p)] += D[h] * dyv;
          }
          for (int64_t n = 0; n < s.n; ++n) {
            const double Bv = Bm[ix.bc(b, t, gr, n)], Cv = Cm[ix.bc(b, t, gr, n)];
            double& gs = G[p * s.n + n];
            gs += dyv * Cv;  // y_t = S_t C_t
            dC[ix.bc(b, t, gr, n)] += dyv * S[(t + 1) * pn + p * s.n + n];
            // S_t = decay S_{t-1} + step x B
            dx[ix.x(b, t, h, p)] += gs * step * Bv;
            dB[ix.bc(b, t, gr, n)] += gs * step * xv;
            dstep += gs * xv * Bv;
            ddecay += gs * S[t * pn + p * s.n + n];
            gs *= decay;
          }
        }
        // decay = exp(step * A): d/dstep = A decay, d/dA = step decay.
        dstep += ddecay * A * decay;
        dA_log[h] += ddecay * step * decay * A;  // dA/dA_log = A
        const double draw = dstep * ssd_dt_slope(s, raw);
        ddt[ix.dt(b, t, h)] += draw;
        dbias[h] += draw;
      }
    }
  return g;
}

Vec ssd_step(const SsdDims& s, const std::vector<Vec>& in, Vec& state) {
  const Vec &x = in[0], &dt = in[1], &bias = in[2], &A_log = in[3], &Bt = in[4], &Ct = in[5], &D = in[6];
  Vec y(s.b * s.h * s.p);
  for (int64_t b = 0; b < s.b; ++b)
    for (int64_t h = 0; h < s.h; ++h) {
      const int64_t g = h / (s.h / s.g);
      const double step = ssd_dt(s, dt[b * s.h + h] + bias[h]), decay = std::exp(-step * std::exp(A_log[h]));
      for (int64_t p = 0; p < s.p; ++p) {
        const double xv = x[(b * s.h + h) * s.p + p];
        double out = s.has_D ? D[h] * xv : 0.0;
        for (int64_t n = 0; n < s.n; ++n) {
          double& st = state[((b * s.h + h) * s.p + p) * s.n + n];
          st = decay * st + step * xv * Bt[(b * s.g + g) * s.n + n];
          out += st * Ct[(b * s.g + g) * s.n + n];
        }
        y[(b * s.h + h) * s.p + p] = out;
      }
    }
  return y;
}

Vec gated_rms_norm(const Vec& y, const Vec& z, const Vec& w, int64_t rows, int64_t d, int64_t groups,
                   double eps) {
  const int64_t gs = d / groups;
  Vec out(rows * d);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t o = r * d + g * gs;
      double ss = 0.0;
      for (int64_t c = 0; c < gs; ++c) {
        const double u = y[o + c] * z[o + c] * sigmoid(z[o + c]);
        ss += u * u;
      }
      const double rs = 1.0 / std::sqrt(ss / gs + eps);
      for (int64_t c = 0; c < gs; ++c) out[o + c] = y[o + c] * z[o + c] * sigmoid(z[o + c]) * rs * w[g * gs + c];
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
        u[c] = y[o + c] * z[o + c] * sigmoid(z[o + c]);
        ss += u[c] * u[c];
        dot += dout[o + c] * w[g * gs + c] * u[c];
      }
      const double rs = 1.0 / std::sqrt(ss / gs + eps);
      for (int64_t c = 0; c < gs; ++c) {
        // out = u rs w, rs = (mean u^2 + eps)^-1/2: du = rs (dout w - u rs^2 mean(dout w u))
        const double du = rs * (dout[o + c] * w[g * gs + c] - u[c] * rs * rs * dot / gs);
        const double sg = sigmoid(z[o + c]);
        dy[o + c] = du * z[o + c] * sg;
        dz[o + c] = du * y[o + c] * sg * (1.0 + z[o + c] * (1.0 - sg));
        dw[g * gs + c] += dout[o + c] * u[c] * rs;
      }
    }
  return {dy, dz, dw};
}

}  // namespace mgtest::ref
