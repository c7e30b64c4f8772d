#include <algorithm>
#include <cmath>

#include "reference.hpp"

namespace mgtest::ref {
namespace {

// Index helpers for the row-major layouts.
struct Idx {
  const SsdDims& s;
  int64_t x(int64_t b, int64_t t, int64_t h, int64_t p) const { return ((b * s.l + t) * s.h + h) * s.p + p; }
  int64_t dt(int64_t b, int64_t t, int64_t h) const { return (b * s.l + t) * s.h + h; }
  int64_t bc(int64_t b, int64_t t, int64_t g, int64_t n) const { return ((b * s.l + t) * s.g + g) * s.n + n; }
  int64_t group(int64_t h) const { return h / (s.h / s.g); }
};

// The step size before the clamp: torch's softplus (linear above 20), or raw as is.
bool uses_softplus(const SsdDims& s, double raw) { return s.softplus && raw <= 20.0; }
double unclamped_dt(const SsdDims& s, double raw) { return uses_softplus(s, raw) ? softplus(raw) : raw; }

}  // namespace

double ssd_dt(const SsdDims& s, double raw) { return std::min(std::max(unclamped_dt(s, raw), s.lo), s.hi); }

double ssd_dt_slope(const SsdDims& s, double raw) {
  const double v = unclamped_dt(s, raw);
  if (v < s.lo || v > s.hi) return 0.0;
  return uses_softplus(s, raw) ? sigmoid(raw) : 1.0;  // softplus' derivative is sigmoid
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
      const int64_t g = Idx{s}.group(h);
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

}  // namespace mgtest::ref
