#include "reference.hpp"

namespace mgtest::ref {

Vec gather_rows(const Vec& src, const Vec& idx, int64_t rows, int64_t d) {
  Vec out(idx.size() * d, 0.0);
  for (size_t n = 0; n < idx.size(); ++n) {
    const int64_t r = static_cast<int64_t>(idx[n]);
    if (r >= 0 && r < rows)
      for (int64_t c = 0; c < d; ++c) out[n * d + c] = src[r * d + c];
  }
  return out;
}

Vec scatter_add_rows(const Vec& src, const Vec& idx, int64_t rows, int64_t d) {
  Vec out(rows * d, 0.0);
  for (size_t n = 0; n < idx.size(); ++n) {
    const int64_t r = static_cast<int64_t>(idx[n]);
    if (r >= 0 && r < rows)
      for (int64_t c = 0; c < d; ++c) out[r * d + c] += src[n * d + c];
  }
  return out;
}

}  // namespace mgtest::ref
