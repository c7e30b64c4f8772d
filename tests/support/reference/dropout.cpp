#include "magellano/ops/dropout.hpp"
#include "reference.hpp"

namespace mgtest::ref {
namespace {
// keep / (1 - p) of element i: the mask is the kernel's hash (ops::dropout_keeps), the rest float64.
double factor(uint64_t seed, size_t i, double p) {
  return magellano::ops::dropout_keeps(seed, i, float(p)) ? 1.0 / (1.0 - p) : 0.0;
}
}  // namespace

Vec dropout(const Vec& x, double p, uint64_t seed) {
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * factor(seed, i, p);
  return y;
}

void dropout_bwd(double p, uint64_t seed, const Vec& dy, Vec& dx) {
  for (size_t i = 0; i < dy.size(); ++i) dx[i] += dy[i] * factor(seed, i, p);
}

}  // namespace mgtest::ref
