#include "magellano/data/blank_infilling.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "magellano/data/objective.hpp"
#include "magellano/data/splitmix.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::data {
namespace {

// Knuth's product of uniforms: exact Poisson for the small means allowed here (λ <= 32).
int64_t poisson(SplitMix64& rng, double lambda) {
  const double limit = std::exp(-lambda);
  int64_t k = 0;
  for (double p = rng.uniform(); p > limit; p *= rng.uniform()) ++k;
  return k;
}

}  // namespace

const char* to_string(InfillMode m) {
  return m == InfillMode::document ? "document" : m == InfillMode::single ? "single" : "spans";
}

const char* to_string(InfillPositions p) { return p == InfillPositions::glm2d ? "glm2d" : "sequential"; }

InfillTokens infill_tokens(int64_t vocab_size) {
  if (vocab_size < 4)
    throw Error("blank infilling needs a vocabulary of at least 4 ids ([MASK], [START], [END] are its top three); "
                "model.vocab_size is " + std::to_string(vocab_size) + ".");
  const auto v = static_cast<int32_t>(vocab_size);
  return {v - 3, v - 2, v - 1};
}

void require_infill_room(uint64_t tokenizer_vocab, int64_t vocab_size, const std::string& what) {
  const InfillTokens t = infill_tokens(vocab_size);
  if (tokenizer_vocab > static_cast<uint64_t>(t.mask))
    throw Error(what + " has a vocabulary of " + std::to_string(tokenizer_vocab) + " ids, which reaches blank "
                "infilling's [MASK] " + std::to_string(t.mask) + ", [START] " + std::to_string(t.start) + ", [END] " +
                std::to_string(t.end) + " (the top three of model.vocab_size " + std::to_string(vocab_size) +
                "); set model.vocab_size to at least " + std::to_string(tokenizer_vocab + 3) + ".");
}

InfillPlan plan_infill(const InfillConfig& c, int64_t len, uint64_t seed, uint64_t draw) {
  if (len < 3)
    throw Error("blank infilling needs windows of at least 3 inputs ([MASK], [START], one span token); got " +
                std::to_string(len) + ".");
  SplitMix64 rng{seed ^ splitmix64(draw ^ 0xB1A4C1F111A6D0C5ull)};
  InfillPlan plan;
  std::vector<int64_t> lengths;  // in drawing order
  int64_t masked = 0;
  if (c.mode == InfillMode::document) {
    const int64_t s = len - 2;
    const double u = 0.5 + 0.5 * rng.uniform();
    lengths.push_back(std::clamp<int64_t>(std::llround(u * static_cast<double>(s)), 1, s));
    masked = lengths[0];
  } else if (c.mode == InfillMode::single) {
    const int64_t s = len - 2;
    lengths.push_back(std::clamp<int64_t>(poisson(rng, c.span_lambda), 1, std::max<int64_t>(1, s / 2)));
    masked = lengths[0];
  } else {
    for (;;) {
      const int64_t s = len - 2 * static_cast<int64_t>(lengths.size() + 1);  // the source with one more span
      if (s < 1) break;
      const int64_t target = std::max<int64_t>(1, std::llround(c.ratio * static_cast<double>(s)));
      if (masked >= target) break;
      const int64_t k = std::min(std::max<int64_t>(1, poisson(rng, c.span_lambda)), target - masked);
      lengths.push_back(k);
      masked += k;
    }
  }
  const auto m = static_cast<int64_t>(lengths.size());
  const int64_t source = len - 2 * m, unmasked = source - masked;
  // m distinct gaps among the unmasked + 1 (before each unmasked token and after the last): a
  // partial Fisher-Yates over 0 .. unmasked.
  std::vector<int64_t> gaps(unmasked + 1);
  std::iota(gaps.begin(), gaps.end(), 0);
  for (int64_t i = 0; i < m; ++i)
    std::swap(gaps[i], gaps[i + static_cast<int64_t>(rng.below(static_cast<uint64_t>(unmasked + 1 - i)))]);
  gaps.resize(m);
  std::sort(gaps.begin(), gaps.end());
  plan.source = static_cast<int32_t>(source);
  int64_t before = 0;  // masked tokens before span i
  for (int64_t i = 0; i < m; ++i) {
    plan.spans.push_back({static_cast<int32_t>(gaps[i] + before), static_cast<int32_t>(lengths[i])});
    before += lengths[i];
  }
  plan.order.resize(m);
  std::iota(plan.order.begin(), plan.order.end(), 0);
  for (int64_t i = m; i > 1; --i) std::swap(plan.order[i - 1], plan.order[rng.below(static_cast<uint64_t>(i))]);
  return plan;
}

int32_t lay_out_infill(const InfillPlan& plan, std::span<const int32_t> window, InfillTokens tokens,
                       std::span<int32_t> x, std::span<int32_t> y, std::span<int32_t> ids) {
  const size_t len = x.size();
  if (y.size() != len || (!ids.empty() && ids.size() != 2 * len) || window.size() < static_cast<size_t>(plan.source) ||
      static_cast<size_t>(plan.source) + 2 * plan.spans.size() != len)
    throw Error("blank infilling: the plan does not fit the window (" + std::to_string(window.size()) +
                " tokens, " + std::to_string(len) + " inputs).");
  size_t t = 0, next = 0;  // t: output position; next: the next span by start
  std::vector<int32_t> mask_at(plan.spans.size());  // span i's [MASK] in part A
  for (int32_t s = 0; s < plan.source;) {
    if (next < plan.spans.size() && plan.spans[next].start == s) {
      mask_at[next] = static_cast<int32_t>(t);
      x[t] = tokens.mask, y[t++] = kIgnoreTarget;
      s += plan.spans[next++].length;
    } else {
      x[t] = window[s++], y[t++] = kIgnoreTarget;
    }
  }
  const auto prefix = static_cast<int32_t>(t);
  if (!ids.empty())
    for (int32_t a = 0; a < prefix; ++a) ids[2 * a] = a, ids[2 * a + 1] = 0;
  for (const int32_t i : plan.order) {
    const InfillSpan& sp = plan.spans[i];
    if (!ids.empty())
      for (int32_t j = 0; j <= sp.length; ++j) ids[2 * (t + j)] = mask_at[i], ids[2 * (t + j) + 1] = j + 1;
    x[t] = tokens.start;
    for (int32_t j = 0; j < sp.length; ++j) {
      y[t++] = window[sp.start + j];
      x[t] = window[sp.start + j];
    }
    y[t++] = tokens.end;
  }
  return prefix;
}

}  // namespace magellano::data
