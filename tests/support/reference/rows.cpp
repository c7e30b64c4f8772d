#include "reference.hpp"

namespace mgtest::ref {

Vec rows(const Vec& x, int64_t d, int64_t from, int64_t to) {
  return Vec(x.begin() + from * d, x.begin() + to * d);
}

void rows_bwd(Vec& dx, int64_t d, int64_t from, int64_t to, const Vec& dy) {
  for (int64_t i = 0; i < (to - from) * d; ++i) dx[from * d + i] += dy[i];
}

}  // namespace mgtest::ref
