#include <algorithm>
#include <numeric>

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

std::vector<int32_t> stable_argsort(const std::vector<int32_t>& keys) {
  std::vector<int32_t> perm(keys.size());
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(), [&](int32_t a, int32_t b) { return keys[a] < keys[b]; });
  return perm;
}

}  // namespace mgtest::ref
