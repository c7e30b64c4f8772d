#include "reference.hpp"

namespace mgtest::ref {

Vec add(const Vec& a, const Vec& b, double alpha) {
  Vec y(a.size());
  for (size_t i = 0; i < y.size(); ++i) y[i] = a[i] + alpha * b[i % b.size()];
  return y;
}

void add_bwd(const Vec& a, const Vec& b, double alpha, const Vec& dy, Vec& da, Vec& db) {
  (void)a;
  for (size_t i = 0; i < dy.size(); ++i) {
    da[i] += dy[i];
    db[i % b.size()] += alpha * dy[i];
  }
}

Vec mul(const Vec& a, const Vec& b) {
  Vec y(a.size());
  for (size_t i = 0; i < y.size(); ++i) y[i] = a[i] * b[i % b.size()];
  return y;
}

void mul_bwd(const Vec& a, const Vec& b, const Vec& dy, Vec& da, Vec& db) {
  for (size_t i = 0; i < dy.size(); ++i) {
    da[i] += dy[i] * b[i % b.size()];
    db[i % b.size()] += dy[i] * a[i];
  }
}

Vec scale(const Vec& x, double s) {
  Vec y = x;
  for (auto& v : y) v *= s;
  return y;
}

}  // namespace mgtest::ref
