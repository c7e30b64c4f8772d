#include "reference.hpp"

namespace mgtest::ref {

void expert_row(const double* x, int64_t d, int64_t f, const Vec& w1, const Vec& w2, const Vec* w3,
                ExpertRow& o) {
  o.h1.assign(f, 0), o.h3.assign(f, 0), o.a.assign(f, 0), o.y.assign(d, 0);
  for (int64_t i = 0; i < f; ++i)
    for (int64_t j = 0; j < d; ++j) {
      o.h1[i] += w1[i * d + j] * x[j];
      if (w3) o.h3[i] += (*w3)[i * d + j] * x[j];
    }
  for (int64_t i = 0; i < f; ++i) o.a[i] = w3 ? silu(o.h1[i]) * o.h3[i] : gelu(o.h1[i]);
  for (int64_t j = 0; j < d; ++j)
    for (int64_t i = 0; i < f; ++i) o.y[j] += w2[j * f + i] * o.a[i];
}

void expert_row_bwd(const double* x, int64_t d, int64_t f, const Vec& w1, const Vec& w2,
                    const Vec* w3, const ExpertRow& fw, const double* dy, double* dx, Vec& dw1,
                    Vec& dw2, Vec* dw3) {
  for (int64_t i = 0; i < f; ++i) {
    double da = 0;
    for (int64_t j = 0; j < d; ++j) {
      da += w2[j * f + i] * dy[j];
      dw2[j * f + i] += dy[j] * fw.a[i];
    }
    const double dh1 = w3 ? da * fw.h3[i] * silu_grad(fw.h1[i]) : da * gelu_grad(fw.h1[i]);
    const double dh3 = w3 ? da * silu(fw.h1[i]) : 0.0;
    for (int64_t j = 0; j < d; ++j) {
      dw1[i * d + j] += dh1 * x[j];
      dx[j] += dh1 * w1[i * d + j];
      if (w3) {
        (*dw3)[i * d + j] += dh3 * x[j];
        dx[j] += dh3 * (*w3)[i * d + j];
      }
    }
  }
}

Vec expert_mlp(const Vec& xs, int64_t d, int64_t f, const std::vector<int64_t>& offsets,
               const std::vector<Vec>& w1s, const std::vector<Vec>& w2s, const std::vector<Vec>& w3s) {
  Vec out(offsets.back() * d);
  ExpertRow row;
  for (size_t e = 0; e + 1 < offsets.size(); ++e)
    for (int64_t r = offsets[e]; r < offsets[e + 1]; ++r) {
      expert_row(&xs[r * d], d, f, w1s[e], w2s[e], w3s.empty() ? nullptr : &w3s[e], row);
      std::copy(row.y.begin(), row.y.end(), out.begin() + r * d);
    }
  return out;
}

void expert_mlp_bwd(const Vec& xs, int64_t d, int64_t f, const std::vector<int64_t>& offsets,
                    const std::vector<Vec>& w1s, const std::vector<Vec>& w2s,
                    const std::vector<Vec>& w3s, const Vec& dy, Vec& dxs, std::vector<Vec>& dw1s,
                    std::vector<Vec>& dw2s, std::vector<Vec>& dw3s) {
  ExpertRow row;
  for (size_t e = 0; e + 1 < offsets.size(); ++e)
    for (int64_t r = offsets[e]; r < offsets[e + 1]; ++r) {
      const Vec* w3 = w3s.empty() ? nullptr : &w3s[e];
      expert_row(&xs[r * d], d, f, w1s[e], w2s[e], w3, row);
      expert_row_bwd(&xs[r * d], d, f, w1s[e], w2s[e], w3, row, &dy[r * d], &dxs[r * d], dw1s[e],
                     dw2s[e], w3 ? &dw3s[e] : nullptr);
    }
}

}  // namespace mgtest::ref
