#include <cmath>

#include "reference.hpp"

namespace mgtest::ref {
namespace {
bool counted(double t, int64_t v, int ignore) { return t != ignore && t >= 0 && t < double(v); }
}  // namespace

Vec cross_entropy(const Vec& x, const Vec& t, int64_t v, int ignore) {
  double sum = 0;
  size_t count = 0;
  for (size_t r = 0; r < t.size(); ++r) {
    if (!counted(t[r], v, ignore)) continue;
    sum += logsumexp(&x[r * v], v) - x[r * v + size_t(t[r])];
    ++count;
  }
  return {count ? sum / double(count) : 0.0};
}

void cross_entropy_bwd(const Vec& x, const Vec& t, int64_t v, int ignore, const Vec& dloss, Vec& dx) {
  size_t count = 0;
  for (double tr : t) count += counted(tr, v, ignore);
  for (size_t r = 0; r < t.size(); ++r) {
    if (!counted(t[r], v, ignore)) continue;
    const double lse = logsumexp(&x[r * v], v);
    for (int64_t c = 0; c < v; ++c)
      dx[r * v + c] += (std::exp(x[r * v + c] - lse) - (double(c) == t[r] ? 1.0 : 0.0)) * dloss[0] /
                       double(count);
  }
}

}  // namespace mgtest::ref
