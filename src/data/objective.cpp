#include "magellano/data/objective.hpp"

#include <algorithm>
#include <cmath>

#include "magellano/runtime/error.hpp"

namespace magellano::data {
namespace {

uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

const char* to_string(Objective o) { return o == Objective::prefix_lm ? "prefix_lm" : "causal"; }

int32_t prefix_length(const ObjectiveConfig& c, std::span<const int32_t> x, uint64_t seed, uint64_t draw) {
  if (c.objective == Objective::causal) return 0;
  const auto len = static_cast<int64_t>(x.size());
  if (c.separator >= 0) {
    const auto it = std::find(x.begin(), x.end(), c.separator);
    return it == x.end() ? 0 : static_cast<int32_t>(it - x.begin() + 1);
  }
  // 53 random bits -> u in [0, 1); f in [min, max]; P = round(f · L) in [0, L].
  const uint64_t r = splitmix64(seed ^ splitmix64(draw ^ 0x5EEDB10C5EEDB10Cull));
  const double u = static_cast<double>(r >> 11) * 0x1.0p-53;
  const double f = c.min_fraction + u * (c.max_fraction - c.min_fraction);
  return static_cast<int32_t>(std::clamp<int64_t>(std::llround(f * static_cast<double>(len)), 0, len));
}

ObjectiveBatch make_batch(const ObjectiveConfig& c, std::span<const int32_t> windows, int64_t batch, int64_t len,
                          uint64_t seed, uint64_t first_draw) {
  if (batch < 1 || len < 1 || windows.size() != static_cast<size_t>(batch * (len + 1)))
    throw Error("objective: a batch of " + std::to_string(windows.size()) + " tokens is not (B, L + 1) = (" +
                std::to_string(batch) + ", " + std::to_string(len + 1) + ").");
  ObjectiveBatch out;
  out.batch = batch;
  out.len = len;
  out.inputs.resize(batch * len);
  out.targets.resize(batch * len);
  for (int64_t b = 0; b < batch; ++b) {
    const int32_t* w = windows.data() + b * (len + 1);
    std::copy(w, w + len, out.inputs.begin() + b * len);
    std::copy(w + 1, w + len + 1, out.targets.begin() + b * len);
    if (c.objective != Objective::prefix_lm) continue;
    const int32_t p = prefix_length(c, {w, static_cast<size_t>(len)}, seed, first_draw + b);
    out.prefix.push_back(p);
    for (int64_t t = 0; t < p - 1; ++t) out.targets[b * len + t] = kIgnoreTarget;
  }
  return out;
}

}  // namespace magellano::data
