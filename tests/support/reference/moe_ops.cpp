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

Vec topk_renorm(const Vec& p, int64_t n, int64_t x, int64_t k) {
  Vec w(n * k);
  for (int64_t r = 0; r < n; ++r) {
    const auto sel = topk(&p[r * x], x, k);
    double s = 0;
    for (int j : sel) s += p[r * x + j];
    for (int64_t j = 0; j < k; ++j) w[r * k + j] = p[r * x + sel[j]] / s;
  }
  return w;
}

void topk_renorm_bwd(const Vec& p, int64_t n, int64_t x, int64_t k, const Vec& dw, Vec& dp) {
  for (int64_t r = 0; r < n; ++r) {
    const auto sel = topk(&p[r * x], x, k);
    double s = 0, dot = 0;
    for (int j : sel) s += p[r * x + j];
    for (int64_t j = 0; j < k; ++j) dot += dw[r * k + j] * p[r * x + sel[j]] / s;
    for (int64_t j = 0; j < k; ++j) dp[r * x + sel[j]] += (dw[r * k + j] - dot) / s;
  }
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
