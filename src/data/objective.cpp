#include "magellano/data/objective.hpp"

#include <algorithm>
#include <cmath>

#include "magellano/data/splitmix.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::data {
const char* to_string(Objective o) {
  return o == Objective::prefix_lm ? "prefix_lm" : o == Objective::blank_infilling ? "blank_infilling" : "causal";
}

Objective row_objective(const ObjectiveConfig& c, uint64_t seed, uint64_t draw) {
  if (!c.mixed()) return c.objective;
  const double u = static_cast<double>(splitmix64(seed ^ splitmix64(draw ^ 0x0B1EC7B1E5C0FFEEull)) >> 11) * 0x1.0p-53;
  const double total = c.mix[0] + c.mix[1] + c.mix[2];
  double edge = 0;
  for (int o = 0; o < 2; ++o)
    if (u * total < (edge += c.mix[o]) && c.mix[o] > 0) return static_cast<Objective>(o);
  return c.mix[2] > 0 ? Objective::blank_infilling : c.mix[1] > 0 ? Objective::prefix_lm : Objective::causal;
}

int32_t prefix_length(const ObjectiveConfig& c, std::span<const int32_t> x, uint64_t seed, uint64_t draw) {
  if (c.objective == Objective::causal) return 0;  // (a mix calls it for its prefix_lm rows only)
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

int32_t make_row(const ObjectiveConfig& c, int64_t vocab_size, std::span<const int32_t> window, uint64_t seed,
                 uint64_t draw, std::span<int32_t> x, std::span<int32_t> y, std::span<int32_t> ids) {
  const size_t len = x.size();
  const Objective o = row_objective(c, seed, draw);
  if (o == Objective::blank_infilling)
    return lay_out_infill(plan_infill(c.infill, static_cast<int64_t>(len), seed, draw), window,
                          infill_tokens(vocab_size), x, y, ids);
  if (!ids.empty())
    for (size_t t = 0; t < len; ++t) ids[2 * t] = static_cast<int32_t>(t), ids[2 * t + 1] = 0;
  std::copy(window.begin(), window.begin() + len, x.begin());
  std::copy(window.begin() + 1, window.begin() + len + 1, y.begin());
  if (o == Objective::causal) return 0;
  ObjectiveConfig prefix_lm = c;
  prefix_lm.objective = Objective::prefix_lm;
  const int32_t p = prefix_length(prefix_lm, {window.data(), len}, seed, draw);
  for (int32_t t = 0; t < p - 1; ++t) y[t] = kIgnoreTarget;
  return p;
}

ObjectiveBatch make_batch(const ObjectiveConfig& c, int64_t vocab_size, std::span<const int32_t> windows,
                          int64_t batch, int64_t len, uint64_t seed, uint64_t first_draw) {
  if (batch < 1 || len < 1 || windows.size() != static_cast<size_t>(batch * (len + 1)))
    throw Error("objective: a batch of " + std::to_string(windows.size()) + " tokens is not (B, L + 1) = (" +
                std::to_string(batch) + ", " + std::to_string(len + 1) + ").");
  ObjectiveBatch out;
  out.batch = batch;
  out.len = len;
  out.inputs.resize(batch * len);
  out.targets.resize(batch * len);
  out.positions.resize(2 * batch * len);
  const bool causal = !c.mixed() && c.objective == Objective::causal;
  for (int64_t b = 0; b < batch; ++b) {
    const auto row = static_cast<size_t>(len);
    const int32_t p = make_row(c, vocab_size, windows.subspan(b * (len + 1), row + 1), seed, first_draw + b,
                               std::span<int32_t>(out.inputs).subspan(b * len, row),
                               std::span<int32_t>(out.targets).subspan(b * len, row),
                               std::span<int32_t>(out.positions).subspan(2 * b * len, 2 * row));
    if (!causal) out.prefix.push_back(p);
  }
  return out;
}

}  // namespace magellano::data
