#include "reference.hpp"

namespace mgtest::ref {

Vec decode_gemv(const Vec& x, int64_t b, int64_t k, const Vec& w, int64_t o, const Vec& norm, double eps,
                const Vec& bias, const Vec& res, double scale) {
  const Vec xn = norm.empty() ? x : rmsnorm(x, b, k, norm, eps);
  Vec y = linear(xn, b, k, w, o, bias);
  for (size_t i = 0; i < y.size(); ++i) y[i] = (res.empty() ? 0.0 : res[i]) + scale * y[i];
  return y;
}

}  // namespace mgtest::ref
