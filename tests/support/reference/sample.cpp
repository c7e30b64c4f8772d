#include <algorithm>
#include <cmath>
#include <numeric>

#include "reference.hpp"

namespace mgtest::ref {

std::array<uint32_t, 4> philox(std::array<uint32_t, 4> c, std::array<uint32_t, 2> k) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) k[0] += 0x9E3779B9u, k[1] += 0xBB67AE85u;
    const uint64_t p0 = uint64_t{0xD2511F53u} * c[0], p1 = uint64_t{0xCD9E8D57u} * c[2];
    c = {uint32_t(p1 >> 32) ^ c[1] ^ k[0], uint32_t(p1), uint32_t(p0 >> 32) ^ c[3] ^ k[1], uint32_t(p0)};
  }
  return c;
}

double philox_uniform(uint64_t seed, int64_t row, int64_t step) {
  const auto r = philox({uint32_t(row), uint32_t(step), uint32_t(uint64_t(step) >> 32), 0u},
                        {uint32_t(seed), uint32_t(seed >> 32)});
  return double(r[0] >> 8) * 0x1.0p-24;
}

SampleDistribution sample_distribution(const std::vector<float>& x, const std::vector<uint8_t>& seen,
                                       const magellano::generate::SamplingParams& p) {
  const size_t V = x.size();
  std::vector<double> v(V);
  for (size_t c = 0; c < V; ++c) {
    v[c] = x[c];
    if (p.repetition_penalty != 1.0f && seen[c]) v[c] = v[c] > 0 ? v[c] / p.repetition_penalty : v[c] * p.repetition_penalty;
  }
  SampleDistribution r;
  r.probs.assign(V, 0.0);
  r.kept.assign(V, false);
  if (p.temperature <= 0) {
    const size_t arg = std::max_element(v.begin(), v.end()) - v.begin();  // first maximum
    r.probs[arg] = 1, r.kept[arg] = true;
    return r;
  }
  for (auto& z : v) z /= p.temperature;
  std::vector<size_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] > v[b]; });
  double threshold = -INFINITY;
  if (p.top_k > 0 && p.top_k < int64_t(V)) threshold = v[order[p.top_k - 1]];
  const double m = v[order[0]];
  double mass = 0;
  for (size_t c = 0; c < V; ++c)
    if (v[c] >= threshold) mass += std::exp(v[c] - m);
  if (p.top_p < 1.0f) {
    double cum = 0, before = 0;  // mass of the values above the current one
    for (size_t i = 0; i < V; ++i) {
      cum += std::exp(v[order[i]] - m) / mass;
      if (i + 1 < V && v[order[i + 1]] == v[order[i]]) continue;  // ties go together
      if (cum >= p.top_p) {
        // The decision here and at the previous value: how far p is from flipping either.
        r.p_margin = std::fabs(cum - p.top_p);
        if (before > 0) r.p_margin = std::min(r.p_margin, std::fabs(before - p.top_p));
        threshold = std::max(threshold, v[order[i]]);
        break;
      }
      before = cum;
    }
  }
  double kept_mass = 0;
  for (size_t c = 0; c < V; ++c)
    if (v[c] >= threshold) kept_mass += std::exp(v[c] - m);
  for (size_t c = 0; c < V; ++c)
    if (v[c] >= threshold) r.kept[c] = true, r.probs[c] = std::exp(v[c] - m) / kept_mass;
  return r;
}

int sample_draw(const SampleDistribution& r, double u, double margin) {
  double cum = 0;
  int last = -1;
  for (size_t c = 0; c < r.probs.size(); ++c) {
    if (!r.kept[c]) continue;
    last = int(c);
    cum += r.probs[c];
    if (std::fabs(cum - u) < margin) return -1;
    if (cum > u) return int(c);
  }
  return last;
}

}  // namespace mgtest::ref
