#include "reference.hpp"

namespace mgtest::ref {

Vec cols(const Vec& x, int64_t rows, int64_t total, int64_t from, int64_t width) {
  Vec y(rows * width);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < width; ++j) y[r * width + j] = x[r * total + from + j];
  return y;
}

void cols_bwd(Vec& dx, int64_t rows, int64_t total, int64_t from, int64_t width, const Vec& dy) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < width; ++j) dx[r * total + from + j] += dy[r * width + j];
}

Vec transpose_last2(const Vec& x, int64_t batch, int64_t m, int64_t n) {
  Vec y(x.size());
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) y[b * m * n + j * m + i] = x[b * m * n + i * n + j];
  return y;
}

}  // namespace mgtest::ref
