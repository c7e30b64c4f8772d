#include "reference.hpp"

namespace mgtest::ref {
namespace {
// Flat index of op(A)(i, k) for A stored row-major (rows, cols) in batch p.
int64_t at(int64_t p, int64_t rows, int64_t cols, bool t, int64_t i, int64_t k) {
  return t ? p * rows * cols + k * cols + i : p * rows * cols + i * cols + k;
}
}  // namespace

Vec matmul(const MatmulDims& s, const Vec& a, const Vec& b, const Vec& bias) {
  const int64_t ar = s.ta ? s.k : s.m, ac = s.ta ? s.m : s.k;
  const int64_t br = s.tb ? s.n : s.k, bc = s.tb ? s.k : s.n;
  Vec y(s.batch * s.m * s.n);
  for (int64_t p = 0; p < s.batch; ++p)
    for (int64_t i = 0; i < s.m; ++i)
      for (int64_t j = 0; j < s.n; ++j) {
        double acc = bias.empty() ? 0.0 : bias[j];
        for (int64_t q = 0; q < s.k; ++q)
          acc += a[at(p, ar, ac, s.ta, i, q)] * b[at(s.shared_b ? 0 : p, br, bc, s.tb, q, j)];
        y[(p * s.m + i) * s.n + j] = acc;
      }
  return y;
}

void matmul_bwd(const MatmulDims& s, const Vec& a, const Vec& b, const Vec& dy, Vec& da, Vec& db,
                Vec* dbias) {
  const int64_t ar = s.ta ? s.k : s.m, ac = s.ta ? s.m : s.k;
  const int64_t br = s.tb ? s.n : s.k, bc = s.tb ? s.k : s.n;
  for (int64_t p = 0; p < s.batch; ++p)
    for (int64_t i = 0; i < s.m; ++i)
      for (int64_t j = 0; j < s.n; ++j) {
        const double g = dy[(p * s.m + i) * s.n + j];
        if (dbias) (*dbias)[j] += g;
        for (int64_t q = 0; q < s.k; ++q) {
          const int64_t ia = at(p, ar, ac, s.ta, i, q), ib = at(s.shared_b ? 0 : p, br, bc, s.tb, q, j);
          da[ia] += g * b[ib];
          db[ib] += g * a[ia];
        }
      }
}

Vec linear(const Vec& x, int64_t m, int64_t k, const Vec& w, int64_t n, const Vec& b) {
  return matmul({1, m, n, k, false, true, false}, x, w, b);
}

void linear_bwd(const Vec& x, int64_t m, int64_t k, const Vec& w, int64_t n, const Vec& dy,
                Vec& dx, Vec& dw, Vec* db) {
  matmul_bwd({1, m, n, k, false, true, false}, x, w, dy, dx, dw, db);
}

}  // namespace mgtest::ref
