// Training objectives (data/objective.hpp): causal batches are the plain (B, L + 1) split; prefix-LM
// prefixes come from the separator or are sampled in the configured fraction range, depend only on
// (seed, draw) (so a resumed batcher gives the same ones), and mask exactly the targets before the
// prefix's last position. Expected values are worked out by hand from the definitions.
#include <gtest/gtest.h>

#include <set>

#include "error_text.hpp"
#include "magellano/data/objective.hpp"

namespace data = magellano::data;

namespace {

// (B, L + 1) windows with token value 100·b + t, so every position is recognisable.
std::vector<int32_t> windows(int64_t B, int64_t L) {
  std::vector<int32_t> w;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t <= L; ++t) w.push_back(static_cast<int32_t>(100 * b + t));
  return w;
}

}  // namespace

TEST(Objective, CausalIsThePlainSplit) {
  const auto w = windows(2, 5);
  const auto b = data::make_batch({}, 1000, w, 2, 5, 7, 0);
  EXPECT_EQ(b.inputs, (std::vector<int32_t>{0, 1, 2, 3, 4, 100, 101, 102, 103, 104}));
  EXPECT_EQ(b.targets, (std::vector<int32_t>{1, 2, 3, 4, 5, 101, 102, 103, 104, 105}));
  EXPECT_TRUE(b.prefix.empty());
}

TEST(Objective, TheSeparatorClosesThePrefixAndOnlySuffixTokensAreTargets) {
  data::ObjectiveConfig c{.objective = data::Objective::prefix_lm, .separator = 102};
  // Row 1 holds the separator at position 2: P = 3, targets of positions 0 and 1 ignored (position
  // 2, the prefix's last, predicts the first suffix token 103). Row 0 has none: P = 0, all counted.
  auto w = windows(2, 6);
  const auto b = data::make_batch(c, 1000, w, 2, 6, 7, 0);
  EXPECT_EQ(b.prefix, (std::vector<int32_t>{0, 3}));
  EXPECT_EQ(b.targets, (std::vector<int32_t>{1, 2, 3, 4, 5, 6, -100, -100, 103, 104, 105, 106}));
  // The separator as the window's last target only (not among the inputs) opens no prefix.
  c.separator = 106;
  EXPECT_EQ(data::make_batch(c, 1000, w, 2, 6, 7, 0).prefix, (std::vector<int32_t>{0, 0}));
}

TEST(Objective, SampledPrefixesFollowTheRangeAndTheDrawOnly) {
  const int64_t L = 40;
  const std::vector<int32_t> x(L, 5);
  const data::ObjectiveConfig c{.objective = data::Objective::prefix_lm, .min_fraction = 0.2, .max_fraction = 0.6};
  std::set<int32_t> seen;
  for (uint64_t draw = 0; draw < 400; ++draw) {
    const int32_t p = data::prefix_length(c, x, 11, draw);
    EXPECT_GE(p, 8) << draw;  // round(0.2 · 40)
    EXPECT_LE(p, 24) << draw;  // round(0.6 · 40)
    EXPECT_EQ(p, data::prefix_length(c, x, 11, draw));  // a pure function of (seed, draw)
    seen.insert(p);
  }
  EXPECT_GE(seen.size(), 15u);  // 17 values possible; 400 draws reach nearly all of them
  int differ = 0;               // another seed, other prefixes
  for (uint64_t draw = 0; draw < 50; ++draw) differ += data::prefix_length(c, x, 11, draw) != data::prefix_length(c, x, 12, draw);
  EXPECT_GT(differ, 25);
  // A fixed fraction gives exactly round(f · L); the batch's rows are draws first_draw, +1, ...
  const data::ObjectiveConfig half{.objective = data::Objective::prefix_lm, .min_fraction = 0.5, .max_fraction = 0.5};
  EXPECT_EQ(data::prefix_length(half, x, 3, 9), 20);
  const auto w = windows(3, 9);
  const auto b = data::make_batch(c, 1000, w, 3, 9, 11, 100);
  for (int64_t r = 0; r < 3; ++r) {
    const int32_t p = data::prefix_length(c, std::span<const int32_t>(w).subspan(r * 10, 9), 11, 100 + r);
    EXPECT_EQ(b.prefix[r], p);
    for (int64_t t = 0; t < 9; ++t) EXPECT_EQ(b.targets[r * 9 + t], t < p - 1 ? -100 : w[r * 10 + t + 1]) << r << " " << t;
  }
}

TEST(Objective, AMisshapenBatchIsOneClearError) {
  const auto w = windows(2, 5);
  mgtest::expect_error([&] { data::make_batch({}, 1000, w, 2, 6, 0, 0); }, "is not (B, L + 1) = (2, 7)");
}
