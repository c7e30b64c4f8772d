#include <cmath>

#include "reference.hpp"

namespace mgtest::ref {

DecodeRouting moe_decode_route(const Vec& x, int64_t t, int64_t d, const Vec& norm, double eps, const Vec& gate,
                               int64_t nx, int64_t k, int mode) {
  using magellano::ops::TopKWeights;
  DecodeRouting r;
  r.xn = rmsnorm(x, t, d, norm, eps);
  const Vec logits = linear(r.xn, t, d, gate, nx);                  // (T, X)
  const Vec scores = mode == 2 ? logits : softmax(logits, nx);       // what the top-K is taken of
  const TopKWeights how = mode == 0 ? TopKWeights::renorm : mode == 1 ? TopKWeights::raw : TopKWeights::softmax;
  r.weights = topk_weights(scores, t, nx, k, how);
  for (int64_t i = 0; i < t; ++i)
    for (int e : topk(&scores[i * nx], nx, k)) r.idx.push_back(e);
  return r;
}

Vec moe_decode_experts(const Vec& x, int64_t t, int64_t d, int64_t f, const DecodeRouting& r, int64_t k,
                       const Vec& w1s, const Vec& w3s, const Vec& w2s, double scale, const Vec& extra) {
  Vec out(t * d);
  auto slice = [](const Vec& v, int64_t e, int64_t n) { return Vec(v.begin() + e * n, v.begin() + (e + 1) * n); };
  for (int64_t i = 0; i < t; ++i) {
    Vec sum(d, 0.0);
    for (int64_t j = 0; j < k; ++j) {
      const int e = r.idx[i * k + j];
      const Vec w1 = slice(w1s, e, f * d), w2 = slice(w2s, e, d * f);
      const Vec w3 = w3s.empty() ? Vec() : slice(w3s, e, f * d);
      ExpertRow row;
      expert_row(&r.xn[i * d], d, f, w1, w2, w3s.empty() ? nullptr : &w3, row);
      for (int64_t c = 0; c < d; ++c) sum[c] += r.weights[i * k + j] * row.y[c];
    }
    for (int64_t c = 0; c < d; ++c)
      out[i * d + c] = x[i * d + c] + scale * (sum[c] + (extra.empty() ? 0.0 : extra[i * d + c]));
  }
  return out;
}

}  // namespace mgtest::ref
