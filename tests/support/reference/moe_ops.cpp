#include <algorithm>
#include <cmath>
#include <numeric>

#include "reference.hpp"

namespace mgtest::ref {

std::vector<int> topk(const double* p, int64_t x, int64_t k) {
  std::vector<int> order(x);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [p](int a, int b) { return p[a] > p[b]; });
  order.resize(k);
  return order;
}

namespace {

// The weights of one row's selection: s / sum (renorm), s (raw) or softmax over the selected.
Vec row_weights(const double* s, const std::vector<int>& sel, magellano::ops::TopKWeights mode) {
  using magellano::ops::TopKWeights;
  Vec w;
  double sum = 0;
  for (int j : sel) sum += mode == TopKWeights::softmax ? std::exp(s[j] - s[sel[0]]) : s[j];
  for (int j : sel)
    w.push_back(mode == TopKWeights::raw      ? s[j]
                : mode == TopKWeights::renorm ? s[j] / sum
                                              : std::exp(s[j] - s[sel[0]]) / sum);
  return w;
}

}  // namespace

Vec topk_weights(const Vec& s, int64_t n, int64_t x, int64_t k, magellano::ops::TopKWeights mode) {
  Vec w(n * k);
  for (int64_t r = 0; r < n; ++r) {
    const Vec wr = row_weights(&s[r * x], topk(&s[r * x], x, k), mode);
    std::copy(wr.begin(), wr.end(), w.begin() + r * k);
  }
  return w;
}

void topk_weights_bwd(const Vec& s, int64_t n, int64_t x, int64_t k, magellano::ops::TopKWeights mode,
                      const Vec& dw, Vec& ds) {
  using magellano::ops::TopKWeights;
  for (int64_t r = 0; r < n; ++r) {
    const auto sel = topk(&s[r * x], x, k);
    const Vec w = row_weights(&s[r * x], sel, mode);
    double sum = 0, dot = 0;
    for (int j : sel) sum += s[r * x + j];
    for (int64_t j = 0; j < k; ++j) dot += dw[r * k + j] * w[j];
    for (int64_t j = 0; j < k; ++j)
      ds[r * x + sel[j]] += mode == TopKWeights::raw      ? dw[r * k + j]
                            : mode == TopKWeights::renorm ? (dw[r * k + j] - dot) / sum
                                                          : w[j] * (dw[r * k + j] - dot);
  }
}

Vec topk_renorm(const Vec& p, int64_t n, int64_t x, int64_t k) {
  return topk_weights(p, n, x, k, magellano::ops::TopKWeights::renorm);
}

void topk_renorm_bwd(const Vec& p, int64_t n, int64_t x, int64_t k, const Vec& dw, Vec& dp) {
  topk_weights_bwd(p, n, x, k, magellano::ops::TopKWeights::renorm, dw, dp);
}

Vec row_scale(const Vec& x, const Vec& w, int64_t r, int64_t d) {
  Vec y(r * d);
  for (int64_t i = 0; i < r * d; ++i) y[i] = w[i / d] * x[i];
  return y;
}

void row_scale_bwd(const Vec& x, const Vec& w, int64_t r, int64_t d, const Vec& dy, Vec& dx, Vec& dw) {
  for (int64_t i = 0; i < r * d; ++i) dx[i] += w[i / d] * dy[i], dw[i / d] += dy[i] * x[i];
}

Vec balance_loss(const Vec& p, const Vec& counts, int64_t n, int64_t x, int64_t k) {
  double s = 0;
  for (int64_t e = 0; e < x; ++e) {
    double pm = 0;
    for (int64_t r = 0; r < n; ++r) pm += p[r * x + e];
    s += counts[e] / double(n * k) * pm / double(n);
  }
  return {double(x) * s};
}

void balance_loss_bwd(const Vec& counts, int64_t n, int64_t x, int64_t k, const Vec& dloss, Vec& dp) {
  for (int64_t i = 0; i < n * x; ++i) dp[i] += dloss[0] * double(x) * counts[i % x] / double(n * k) / double(n);
}

Vec z_loss(const Vec& logits, int64_t n, int64_t x) {
  double s = 0;
  for (int64_t r = 0; r < n; ++r) s += std::pow(logsumexp(&logits[r * x], x), 2);
  return {s / double(n)};
}

void z_loss_bwd(const Vec& logits, int64_t n, int64_t x, const Vec& dloss, Vec& dlogits) {
  for (int64_t r = 0; r < n; ++r) {
    const double l = logsumexp(&logits[r * x], x);
    for (int64_t j = 0; j < x; ++j)
      dlogits[r * x + j] += dloss[0] * 2.0 / double(n) * l * std::exp(logits[r * x + j] - l);
  }
}

RoutingPlan routing_plan(const std::vector<int32_t>& ids, int64_t x, int64_t k) {
  RoutingPlan p;
  p.perm = stable_argsort(ids);
  p.counts.assign(x, 0);
  p.offsets.assign(x + 1, 0);
  for (size_t i = 0; i < ids.size(); ++i) p.token_of.push_back(int32_t(p.perm[i] / k)), p.counts[ids[i]]++;
  for (int64_t e = 0; e < x; ++e) p.offsets[e + 1] = p.offsets[e] + p.counts[e];
  return p;
}

}  // namespace mgtest::ref
