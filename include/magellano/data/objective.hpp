// Training objectives: how a batch of token windows becomes model inputs, targets and (for
// prefix-LM) per-sequence prefix lengths.
//
//   causal     inputs x = window[0, L), targets y = window[1, L + 1), no prefix
//   prefix_lm  the same x and y, and a prefix length P per row (GLM / UniLM prefix-LM): the
//              attention layers let positions 0 .. P-1 see each other (bidirectional) and stay
//              causal after them; the loss covers the suffix tokens only, i.e. the targets
//              y[t] = window[t + 1] for t >= P - 1 (position P - 1, the prefix's last, predicts the
//              first suffix token from the prefix alone); y[t] = ignore (-100) for t < P - 1.
// P comes from a separator token (P = the index of the first separator in x, plus one: the
// separator closes the prefix; a row without one gets P = 0, a plain causal row), or is sampled:
// P = round(f · L), f uniform in [min_fraction, max_fraction], from a splitmix64 value of
// (seed, draw) where draw is the window's index in the batcher's stream of draws (epoch · windows
// + position). The batcher's state therefore fixes every prefix: a resumed run draws the same ones.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace magellano::data {

enum class Objective { causal, prefix_lm };
const char* to_string(Objective o);  // "causal", "prefix_lm"

struct ObjectiveConfig {
  Objective objective = Objective::causal;
  double min_fraction = 0.25, max_fraction = 0.75;  // sampled prefix: f in [min, max] (0 <= min <= max <= 1)
  int32_t separator = -1;                           // >= 0: the prefix ends at this token (no sampling)
  bool operator==(const ObjectiveConfig&) const = default;
};

inline constexpr int32_t kIgnoreTarget = -100;

struct ObjectiveBatch {
  int64_t batch = 0, len = 0;          // B, L
  std::vector<int32_t> inputs;         // (B, L)
  std::vector<int32_t> targets;        // (B, L), kIgnoreTarget where not in the loss
  std::vector<int32_t> prefix;         // (B) prefix lengths in [0, L]; empty for causal
};

// The prefix length of one row: x the row's L inputs, draw its index in the stream of draws.
int32_t prefix_length(const ObjectiveConfig& c, std::span<const int32_t> x, uint64_t seed, uint64_t draw);

// windows: (B, L + 1) row-major (Batcher::next); row b is draw first_draw + b.
ObjectiveBatch make_batch(const ObjectiveConfig& c, std::span<const int32_t> windows, int64_t batch, int64_t len,
                          uint64_t seed, uint64_t first_draw);

}  // namespace magellano::data
