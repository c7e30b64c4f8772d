#include <algorithm>
#include <cmath>

#include "reference.hpp"

namespace mgtest::ref {

double logsumexp(const double* row, int64_t cols) {
  double m = -INFINITY, s = 0;
  for (int64_t c = 0; c < cols; ++c) m = std::max(m, row[c]);
  for (int64_t c = 0; c < cols; ++c) s += std::exp(row[c] - m);
  return m + std::log(s);
}

Vec softmax(const Vec& x, int64_t cols) {
  Vec y(x.size());
  for (size_t r = 0; r < x.size() / cols; ++r) {
    double m = -INFINITY, s = 0;
    for (int64_t c = 0; c < cols; ++c) m = std::max(m, x[r * cols + c]);
    for (int64_t c = 0; c < cols; ++c) s += std::exp(x[r * cols + c] - m);
    for (int64_t c = 0; c < cols; ++c) y[r * cols + c] = std::exp(x[r * cols + c] - m) / s;
  }
  return y;
}

void softmax_bwd(const Vec& x, int64_t cols, const Vec& dy, Vec& dx) {
  const Vec y = softmax(x, cols);
  for (size_t r = 0; r < x.size() / cols; ++r) {
    double dot = 0;
    for (int64_t c = 0; c < cols; ++c) dot += dy[r * cols + c] * y[r * cols + c];
    for (int64_t c = 0; c < cols; ++c) dx[r * cols + c] += y[r * cols + c] * (dy[r * cols + c] - dot);
  }
}

}  // namespace mgtest::ref
