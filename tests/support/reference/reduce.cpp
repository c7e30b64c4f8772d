#include "reference.hpp"

namespace mgtest::ref {

Vec sum(const Vec& x) {
  double a = 0;
  for (double v : x) a += v;
  return {a};
}

Vec mean(const Vec& x) { return {sum(x)[0] / double(x.size())}; }

void sum_bwd(const Vec& x, const Vec& dy, Vec& dx) {
  for (size_t i = 0; i < x.size(); ++i) dx[i] += dy[0];
}

void mean_bwd(const Vec& x, const Vec& dy, Vec& dx) {
  for (size_t i = 0; i < x.size(); ++i) dx[i] += dy[0] / double(x.size());
}

Vec sum_last(const Vec& x, int64_t cols) {
  Vec y(x.size() / cols, 0.0);
  for (size_t i = 0; i < x.size(); ++i) y[i / cols] += x[i];
  return y;
}

Vec mean_last(const Vec& x, int64_t cols) {
  Vec y(x.size() / cols, 0.0);
  for (size_t i = 0; i < x.size(); ++i) y[i / cols] += x[i] / double(cols);
  return y;
}

void sum_last_bwd(int64_t cols, const Vec& dy, Vec& dx) {
  for (size_t i = 0; i < dx.size(); ++i) dx[i] += dy[i / cols];
}

void mean_last_bwd(int64_t cols, const Vec& dy, Vec& dx) {
  for (size_t i = 0; i < dx.size(); ++i) dx[i] += dy[i / cols] / double(cols);
}

}  // namespace mgtest::ref
