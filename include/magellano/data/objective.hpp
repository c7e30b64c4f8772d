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
//   blank_infilling  GLM's blank infilling (data/blank_infilling.hpp): x = part A (spans replaced
//              by [MASK], the bidirectional prefix) ++ part B ([START] span ... per span), loss on
//              part B only; spans from (seed, draw) like sampled prefixes.
// A mix (ObjectiveConfig::mix, weights >= 0 of causal, prefix_lm, blank_infilling, not all zero)
// picks each row's objective from a splitmix64 value of (seed, draw) with those probabilities;
// without one every row takes `objective`.
#pragma once
#include <cstdint>
#include <array>
#include <span>
#include <vector>

#include "magellano/data/blank_infilling.hpp"

namespace magellano::data {

enum class Objective { causal, prefix_lm, blank_infilling };
const char* to_string(Objective o);  // "causal", "prefix_lm", "blank_infilling"

struct ObjectiveConfig {
  Objective objective = Objective::causal;
  double min_fraction = 0.25, max_fraction = 0.75;  // sampled prefix: f in [min, max] (0 <= min <= max <= 1)
  int32_t separator = -1;                           // >= 0: the prefix ends at this token (no sampling)
  InfillConfig infill;                              // blank_infilling's spans
  std::array<double, 3> mix{};                      // weights of causal, prefix_lm, blank_infilling; all 0: none
  bool mixed() const { return mix[0] + mix[1] + mix[2] > 0; }
  // Any row may take `o` (the objective itself, or a mix weight above 0).
  bool uses(Objective o) const { return mixed() ? mix[static_cast<int>(o)] > 0 : objective == o; }
  bool operator==(const ObjectiveConfig&) const = default;
};

inline constexpr int32_t kIgnoreTarget = -100;

struct ObjectiveBatch {
  int64_t batch = 0, len = 0;          // B, L
  std::vector<int32_t> inputs;         // (B, L)
  std::vector<int32_t> targets;        // (B, L), kIgnoreTarget where not in the loss
  std::vector<int32_t> prefix;         // (B) prefix lengths in [0, L]; empty for causal
  std::vector<int32_t> positions;      // (B, L, 2) GLM 2D ids (blank_infilling.hpp); other rows (t, 0)
};

// The objective of row `draw` (the mix's choice, or c.objective).
Objective row_objective(const ObjectiveConfig& c, uint64_t seed, uint64_t draw);

// The prefix length of one prefix_lm row: x the row's L inputs, draw its index in the stream of
// draws (0 when c.objective is causal).
int32_t prefix_length(const ObjectiveConfig& c, std::span<const int32_t> x, uint64_t seed, uint64_t draw);

// One row under its objective: window (L + 1) tokens -> x, y (L each); returns the prefix length
// (0 for causal). vocab_size places blank infilling's special tokens (infill_tokens()).
// ids (2·L, or empty): GLM's 2D ids of the row ((t, 0) unless it is blank infilling).
int32_t make_row(const ObjectiveConfig& c, int64_t vocab_size, std::span<const int32_t> window, uint64_t seed,
                 uint64_t draw, std::span<int32_t> x, std::span<int32_t> y, std::span<int32_t> ids = {});

// windows: (B, L + 1) row-major (Batcher::next); row b is draw first_draw + b. The prefix vector
// is filled (causal rows 0) unless every row is causal.
ObjectiveBatch make_batch(const ObjectiveConfig& c, int64_t vocab_size, std::span<const int32_t> windows,
                          int64_t batch, int64_t len, uint64_t seed, uint64_t first_draw);

}  // namespace magellano::data
