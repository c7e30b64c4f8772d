#include <cmath>

#include "reference.hpp"

namespace mgtest::ref {

Vec rmsnorm(const Vec& x, int64_t rows, int64_t d, const Vec& w, double eps) {
  Vec y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t j = 0; j < d; ++j) ss += x[r * d + j] * x[r * d + j];
    const double rs = 1.0 / std::sqrt(ss / d + eps);
    for (int64_t j = 0; j < d; ++j) y[r * d + j] = x[r * d + j] * rs * w[j];
  }
  return y;
}

void rmsnorm_bwd(const Vec& x, int64_t rows, int64_t d, const Vec& w, double eps, const Vec& dy,
                 Vec& dx, Vec& dw) {
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0, dot = 0;
    for (int64_t j = 0; j < d; ++j) ss += x[r * d + j] * x[r * d + j];
    const double rs = 1.0 / std::sqrt(ss / d + eps);
    for (int64_t j = 0; j < d; ++j) {
      dw[j] += dy[r * d + j] * x[r * d + j] * rs;
      dot += dy[r * d + j] * w[j] * x[r * d + j];
    }
    for (int64_t j = 0; j < d; ++j)
      dx[r * d + j] += rs * dy[r * d + j] * w[j] - x[r * d + j] * rs * rs * rs * dot / d;
  }
}

}  // namespace mgtest::ref
