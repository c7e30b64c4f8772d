#include <algorithm>
#include <cmath>

#include "reference.hpp"

namespace mgtest::ref {
namespace {

struct Idx {
  const AttentionDims& s;
  int64_t q(int64_t b, int64_t t, int64_t h) const { return ((b * s.l + t) * s.h + h) * s.d; }
  int64_t kv(int64_t b, int64_t t, int64_t g) const { return ((b * s.l + t) * s.kvh + g) * s.d; }
  int64_t group(int64_t h) const { return h / (s.h / s.kvh); }
  // Keys visible from query t of row b: 0 .. keys - 1 (causal: s <= t, or s in the prefix).
  int64_t keys(int64_t b, int64_t t) const {
    if (!s.causal) return s.l;
    const int64_t p = s.prefix.empty() ? 0 : std::clamp<int64_t>(s.prefix[b], 0, s.l);
    return std::max(t + 1, p);
  }
};

double dot(const double* a, const double* b, int64_t d) {
  double r = 0;
  for (int64_t c = 0; c < d; ++c) r += a[c] * b[c];
  return r;
}

// P[s] = softmax over the visible keys of row (b, t, h).
Vec probabilities(const AttentionDims& s, const Vec& q, const Vec& k, int64_t b, int64_t t, int64_t h) {
  const Idx ix{s};
  const int64_t n = ix.keys(b, t), g = ix.group(h);
  Vec p(n);
  for (int64_t j = 0; j < n; ++j) p[j] = s.scale * dot(&q[ix.q(b, t, h)], &k[ix.kv(b, j, g)], s.d);
  const double mx = *std::max_element(p.begin(), p.end());
  double sum = 0;
  for (auto& x : p) sum += (x = std::exp(x - mx));
  for (auto& x : p) x /= sum;
  return p;
}

}  // namespace

Vec attention(const AttentionDims& s, const Vec& q, const Vec& k, const Vec& v) {
  const Idx ix{s};
  Vec out(q.size(), 0.0);
  for (int64_t b = 0; b < s.b; ++b)
    for (int64_t h = 0; h < s.h; ++h)
      for (int64_t t = 0; t < s.l; ++t) {
        const Vec p = probabilities(s, q, k, b, t, h);
        double* o = &out[ix.q(b, t, h)];
        for (int64_t j = 0; j < static_cast<int64_t>(p.size()); ++j)
          for (int64_t c = 0; c < s.d; ++c) o[c] += p[j] * v[ix.kv(b, j, ix.group(h)) + c];
      }
  return out;
}

std::vector<Vec> attention_bwd(const AttentionDims& s, const Vec& q, const Vec& k, const Vec& v, const Vec& dout) {
  const Idx ix{s};
  Vec dq(q.size(), 0.0), dk(k.size(), 0.0), dv(v.size(), 0.0);
  for (int64_t b = 0; b < s.b; ++b)
    for (int64_t h = 0; h < s.h; ++h)
      for (int64_t t = 0; t < s.l; ++t) {
        const int64_t g = ix.group(h), n = ix.keys(b, t);
        const Vec p = probabilities(s, q, k, b, t, h);
        const double* dO = &dout[ix.q(b, t, h)];
        Vec dp(n);
        double D = 0;  // Σ_j P_j dP_j = dout · out
        for (int64_t j = 0; j < n; ++j) D += p[j] * (dp[j] = dot(dO, &v[ix.kv(b, j, g)], s.d));
        for (int64_t j = 0; j < n; ++j) {
          const double ds = p[j] * (dp[j] - D);
          for (int64_t c = 0; c < s.d; ++c) {
            dq[ix.q(b, t, h) + c] += s.scale * ds * k[ix.kv(b, j, g) + c];
            dk[ix.kv(b, j, g) + c] += s.scale * ds * q[ix.q(b, t, h) + c];
            dv[ix.kv(b, j, g) + c] += p[j] * dO[c];
          }
        }
      }
  return {dq, dk, dv};
}

Vec rope(const Vec& x, int64_t b, int64_t l, int64_t heads, int64_t d, double theta, int64_t start, bool inverse) {
  Vec y(x.size());
  const int64_t half = d / 2;
  for (int64_t r = 0; r < b * l * heads; ++r) {
    const double pos = double(start + (r / heads) % l);
    for (int64_t i = 0; i < half; ++i) {
      const double angle = pos * std::pow(theta, -2.0 * double(i) / double(d)) * (inverse ? -1.0 : 1.0);
      const double c = std::cos(angle), sn = std::sin(angle), x1 = x[r * d + i], x2 = x[r * d + half + i];
      y[r * d + i] = x1 * c - x2 * sn;
      y[r * d + half + i] = x2 * c + x1 * sn;
    }
  }
  return y;
}

Vec rope_2d(const Vec& x, const std::vector<int32_t>& ids, int64_t b, int64_t l, int64_t heads, int64_t d, double theta,
            bool inverse) {
  Vec y(x.size());
  const int64_t half = d / 2, quarter = d / 4;
  for (int64_t r = 0; r < b * l * heads; ++r) {
    const int64_t token = r / heads;
    for (int64_t g = 0; g < 2; ++g) {
      const double id = double(ids[2 * token + g]);
      const int64_t o = r * d + g * half;  // this half's first element
      for (int64_t i = 0; i < quarter; ++i) {
        const double angle = id * std::pow(theta, -2.0 * double(i) / double(half)) * (inverse ? -1.0 : 1.0);
        const double c = std::cos(angle), sn = std::sin(angle), x1 = x[o + i], x2 = x[o + quarter + i];
        y[o + i] = x1 * c - x2 * sn;
        y[o + quarter + i] = x2 * c + x1 * sn;
      }
    }
  }
  return y;
}

Vec attention_decode(const Vec& q, const Vec& keys, const Vec& values, int64_t t, int64_t h, int64_t kvh, int64_t d,
                     double scale) {
  Vec out(h * d, 0.0);
  if (t == 0) return out;
  for (int64_t j = 0; j < h; ++j) {
    const int64_t g = j / (h / kvh);
    Vec p(t);
    for (int64_t s = 0; s < t; ++s) p[s] = scale * dot(&q[j * d], &keys[(s * kvh + g) * d], d);
    const double mx = *std::max_element(p.begin(), p.end());
    double sum = 0;
    for (auto& x : p) sum += (x = std::exp(x - mx));
    for (int64_t s = 0; s < t; ++s)
      for (int64_t c = 0; c < d; ++c) out[j * d + c] += p[s] / sum * values[(s * kvh + g) * d + c];
  }
  return out;
}

}  // namespace mgtest::ref
