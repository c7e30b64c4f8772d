// Blank infilling (data/blank_infilling.hpp) and the objective mix (data/objective.hpp), against the
// plain C++ references in support/infill_reference.hpp: the exact layout of parts A and B and the
// loss mask (by hand for one plan, by the concatenating reference for thousands), the plan's
// invariants, span statistics against the float64 law of max(1, Poisson(λ)), determinism from
// (seed, draw) (what bit-exact resume rests on), odd sizes, poisoned outputs, and broken layouts
// that the comparison must catch.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "error_text.hpp"
#include "infill_reference.hpp"
#include "magellano/data/objective.hpp"

namespace data = magellano::data;
using mgtest::reference_infill_row;

namespace {

constexpr data::InfillTokens kTokens{997, 998, 999};  // infill_tokens(1000)
constexpr int32_t kPoison = -7;

std::vector<int32_t> window(int64_t len, int32_t base = 10) {
  std::vector<int32_t> w(len + 1);
  for (int64_t t = 0; t <= len; ++t) w[t] = base + static_cast<int32_t>(t);
  return w;
}

mgtest::InfillRow lay_out(const data::InfillPlan& plan, const std::vector<int32_t>& w, int64_t len) {
  mgtest::InfillRow r;
  r.x.assign(len, kPoison);
  r.y.assign(len, kPoison);
  r.prefix = data::lay_out_infill(plan, w, kTokens, r.x, r.y);
  return r;
}

}  // namespace

TEST(BlankInfilling, SpecialTokensAreTheTopThreeIds) {
  const auto t = data::infill_tokens(1000);
  EXPECT_EQ(t.mask, 997);
  EXPECT_EQ(t.start, 998);
  EXPECT_EQ(t.end, 999);
  mgtest::expect_error([] { data::infill_tokens(3); }, "needs a vocabulary of at least 4 ids");
  data::require_infill_room(997, 1000, "f");
  mgtest::expect_error([] { data::require_infill_room(998, 1000, "token file t.tok"); },
                       "token file t.tok has a vocabulary of 998 ids, which reaches blank infilling's [MASK] 997");
  mgtest::expect_error([] { data::require_infill_room(998, 1000, "f"); }, "set model.vocab_size to at least 1001");
}

// One plan worked by hand: L = 12, two spans -> source 8 = tokens 10..17.
TEST(BlankInfilling, LayoutOfPartsAAndBByHand) {
  const data::InfillPlan plan{8, {{1, 2}, {5, 1}}, {1, 0}};
  const auto r = lay_out(plan, window(12), 12);
  //                       part A: 10 [11 12] 13 14 [15] 16 17       part B: [START] 15, [START] 11 12
  EXPECT_EQ(r.x, (std::vector<int32_t>{10, 997, 13, 14, 997, 16, 17, 998, 15, 998, 11, 12}));
  EXPECT_EQ(r.y, (std::vector<int32_t>{-100, -100, -100, -100, -100, -100, -100, 15, 999, 11, 12, 999}));
  EXPECT_EQ(r.prefix, 7);
  EXPECT_EQ(r, reference_infill_row(plan, window(12), kTokens));
  mgtest::expect_error([&] { lay_out(plan, window(13), 13); }, "the plan does not fit the window");
}

// GLM's 2D ids of the same plan, by hand: part A (t, 0); each span's [START] and tokens in part B
// (its [MASK]'s index in A, 1 .. k + 1). Poisoned before; every entry written. make_row writes
// (t, 0) for a causal row, and make_batch the ids of each row.
TEST(BlankInfilling, Glm2dIdsByHand) {
  const data::InfillPlan plan{8, {{1, 2}, {5, 1}}, {1, 0}};
  std::vector<int32_t> x(12), y(12), ids(24, kPoison);
  data::lay_out_infill(plan, window(12), kTokens, x, y, ids);
  EXPECT_EQ(ids, (std::vector<int32_t>{0, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0,  // part A
                                       4, 1, 4, 2,                                // [START] 15
                                       1, 1, 1, 2, 1, 3}));                       // [START] 11 12
  std::vector<int32_t> short_ids(22);
  mgtest::expect_error([&] { data::lay_out_infill(plan, window(12), kTokens, x, y, short_ids); },
                       "the plan does not fit the window");
  const data::ObjectiveConfig causal{};
  std::vector<int32_t> cx(5), cy(5), cids(10, kPoison);
  data::make_row(causal, 1000, window(5), 1, 2, cx, cy, cids);
  EXPECT_EQ(cids, (std::vector<int32_t>{0, 0, 1, 0, 2, 0, 3, 0, 4, 0}));
  const data::ObjectiveConfig c{.objective = data::Objective::blank_infilling};
  const auto w = window(20);
  const auto batch = data::make_batch(c, 1000, w, 1, 20, 11, 40);
  std::vector<int32_t> rx(20), ry(20), rids(40);
  data::make_row(c, 1000, w, 11, 40, rx, ry, rids);
  EXPECT_EQ(batch.positions, rids);
}

// Thousands of sampled plans at odd sizes: every plan valid, every layout equal to the reference
// (no poison left), and the comparison catches two broken layouts.
TEST(BlankInfilling, SampledPlansMatchTheReferenceAtOddSizes) {
  for (const data::InfillMode mode : {data::InfillMode::spans, data::InfillMode::document, data::InfillMode::single}) {
    for (const double ratio : {0.15, 0.5}) {
      const data::InfillConfig c{mode, ratio, 3.0};
      for (const int64_t len : {3, 4, 5, 7, 33, 128, 257}) {
        const auto w = window(len);
        for (uint64_t draw = 0; draw < 60; ++draw) {
          const auto plan = data::plan_infill(c, len, 5, draw);
          ASSERT_EQ(mgtest::infill_plan_problems(plan, c, len), "") << "L " << len << " draw " << draw;
          const auto got = lay_out(plan, w, len);
          const auto want = reference_infill_row(plan, w, kTokens);
          ASSERT_EQ(got, want) << "L " << len << " draw " << draw;
          EXPECT_EQ(std::count(got.x.begin(), got.x.end(), kPoison) + std::count(got.y.begin(), got.y.end(), kPoison), 0);
          // Broken variants: part B in ascending span order, or the targets not shifted.
          if (plan.spans.size() >= 2 && !std::is_sorted(plan.order.begin(), plan.order.end())) {
            auto sorted = plan;
            std::sort(sorted.order.begin(), sorted.order.end());
            EXPECT_NE(lay_out(sorted, w, len), want);
          }
          auto unshifted = got;
          std::copy(got.x.begin() + got.prefix, got.x.end(), unshifted.y.begin() + got.prefix);
          EXPECT_NE(unshifted, want);
        }
      }
    }
  }
  mgtest::expect_error([] { data::plan_infill({}, 2, 0, 0); }, "needs windows of at least 3 inputs");
}

// Span lengths follow max(1, Poisson(3)) (the float64 law; each row's last span is cut to the
// target and left out), the masked fraction is 15% of the source, part B's order is random.
TEST(BlankInfilling, SpanStatisticsFollowTheConfiguredLaw) {
  const data::InfillConfig c;  // spans, ratio 0.15, λ 3
  const int64_t len = 256;
  std::map<int64_t, int64_t> counts;
  int64_t spans = 0, masked = 0, source = 0, shuffled = 0, long_rows = 0;
  for (uint64_t draw = 0; draw < 3000; ++draw) {
    const auto plan = data::plan_infill(c, len, 42, draw);
    for (size_t i = 0; i + 1 < plan.spans.size(); ++i) ++counts[plan.spans[i].length], ++spans;
    for (const auto& sp : plan.spans) masked += sp.length;
    source += plan.source;
    if (plan.spans.size() >= 4) ++long_rows, shuffled += !std::is_sorted(plan.order.begin(), plan.order.end());
  }
  ASSERT_GT(spans, 20000);
  // Frequencies within 0.01 of the law: about 4 standard errors (sqrt(0.25 / 20000) = 0.0035).
  for (int64_t k = 1; k <= 10; ++k)
    EXPECT_NEAR(static_cast<double>(counts[k]) / spans, mgtest::span_length_probability(3.0, k), 0.01) << "k " << k;
  // Every row masks round(0.15 · S) give or take one token (S about 220): 15% within 0.3 points.
  EXPECT_NEAR(static_cast<double>(masked) / source, 0.15, 0.003);
  EXPECT_GT(static_cast<double>(shuffled) / long_rows, 0.9);  // sorted by chance: 1/4! or less
}

TEST(BlankInfilling, DocumentModeMasksHalfToAllOfTheSource) {
  const data::InfillConfig c{data::InfillMode::document, 0.15, 3.0};
  double fraction = 0, place = 0;
  const int draws = 2000;
  for (uint64_t draw = 0; draw < draws; ++draw) {
    const auto plan = data::plan_infill(c, 100, 3, draw);
    ASSERT_EQ(plan.spans.size(), 1u);
    ASSERT_EQ(plan.source, 98);
    fraction += plan.spans[0].length / 98.0;
    if (plan.spans[0].length < 98) place += plan.spans[0].start / (98.0 - plan.spans[0].length);
    else place += 0.5;
  }
  EXPECT_NEAR(fraction / draws, 0.75, 0.01);  // uniform in [0.5, 1]: sd 0.144 / sqrt(2000) = 0.003
  EXPECT_NEAR(place / draws, 0.5, 0.03);      // a uniform start
}

// Single: one span per window, its length max(1, Poisson(λ)) (the float64 law; at L = 130 the cap
// S / 2 = 64 is never reached in practice), at a uniform start.
TEST(BlankInfilling, SingleModeMasksOneSpanOfPoissonLength) {
  const data::InfillConfig c{data::InfillMode::single, 0.15, 2.0};
  std::map<int64_t, int64_t> counts;
  double place = 0;
  const int draws = 20000;
  for (uint64_t draw = 0; draw < draws; ++draw) {
    const auto plan = data::plan_infill(c, 130, 4, draw);
    ASSERT_EQ(plan.spans.size(), 1u);
    ASSERT_EQ(plan.source, 128);
    ++counts[plan.spans[0].length];
    place += plan.spans[0].start / (128.0 - plan.spans[0].length);
  }
  for (int64_t k = 1; k <= 8; ++k)  // within 0.01: over 4 standard errors (sqrt(0.25 / 20000) = 0.0035)
    EXPECT_NEAR(static_cast<double>(counts[k]) / draws, mgtest::span_length_probability(2.0, k), 0.01) << "k " << k;
  EXPECT_NEAR(place / draws, 0.5, 0.01);  // a uniform start: sd 0.29 / sqrt(20000) = 0.002
}

// A plan is a pure function of (seed, draw): the batcher's state fixes every row's spans.
TEST(BlankInfilling, PlansDependOnSeedAndDrawOnly) {
  const data::InfillConfig c;
  int differ = 0;
  for (uint64_t draw = 0; draw < 50; ++draw) {
    const auto a = data::plan_infill(c, 64, 9, draw), b = data::plan_infill(c, 64, 9, draw);
    EXPECT_EQ(a.spans, b.spans);
    EXPECT_EQ(a.order, b.order);
    differ += data::plan_infill(c, 64, 10, draw).spans != a.spans;
  }
  EXPECT_GT(differ, 40);
}

// make_batch: row b is make_row of draw first_draw + b; blank infilling rows are the reference's.
TEST(BlankInfilling, BatchRowsAreTheirDrawsTransform) {
  const data::ObjectiveConfig c{.objective = data::Objective::blank_infilling};
  const int64_t B = 3, L = 20;
  std::vector<int32_t> w;
  for (int64_t b = 0; b < B; ++b) {
    const auto row = window(L, static_cast<int32_t>(100 * b));
    w.insert(w.end(), row.begin(), row.end());
  }
  const auto batch = data::make_batch(c, 1000, w, B, L, 11, 40);
  ASSERT_EQ(batch.prefix.size(), 3u);
  for (int64_t b = 0; b < B; ++b) {
    const auto want = reference_infill_row(data::plan_infill(c.infill, L, 11, 40 + b),
                                           window(L, static_cast<int32_t>(100 * b)), kTokens);
    EXPECT_EQ(std::vector<int32_t>(batch.inputs.begin() + b * L, batch.inputs.begin() + (b + 1) * L), want.x);
    EXPECT_EQ(std::vector<int32_t>(batch.targets.begin() + b * L, batch.targets.begin() + (b + 1) * L), want.y);
    EXPECT_EQ(batch.prefix[b], want.prefix);
  }
}

// A mix picks each row's objective with the weights' probabilities, from (seed, draw) alone.
TEST(BlankInfilling, ObjectiveMixPicksRowsByWeight) {
  data::ObjectiveConfig c;
  c.mix = {1, 0, 3};
  std::map<data::Objective, int> counts;
  for (uint64_t draw = 0; draw < 4000; ++draw) {
    const auto o = data::row_objective(c, 7, draw);
    EXPECT_EQ(o, data::row_objective(c, 7, draw));
    ++counts[o];
  }
  EXPECT_EQ(counts[data::Objective::prefix_lm], 0);
  EXPECT_NEAR(counts[data::Objective::blank_infilling] / 4000.0, 0.75, 0.03);  // sd 0.007
  c.mix = {0, 2, 0};
  for (uint64_t draw = 0; draw < 100; ++draw) EXPECT_EQ(data::row_objective(c, 7, draw), data::Objective::prefix_lm);
  c.mix = {};
  c.objective = data::Objective::blank_infilling;
  EXPECT_EQ(data::row_objective(c, 7, 3), data::Objective::blank_infilling);  // no mix: the objective
  // A mixed batch: causal rows are the plain split with prefix 0, infilling rows the reference's.
  c = {};
  c.mix = {1, 0, 1};
  const int64_t B = 16, L = 12;
  std::vector<int32_t> w;
  for (int64_t b = 0; b < B; ++b) {
    const auto row = window(L, static_cast<int32_t>(50 * b));
    w.insert(w.end(), row.begin(), row.end());
  }
  const auto batch = data::make_batch(c, 1000, w, B, L, 7, 0);
  int causal = 0;
  for (int64_t b = 0; b < B; ++b) {
    const auto row = window(L, static_cast<int32_t>(50 * b));
    const std::vector<int32_t> x(batch.inputs.begin() + b * L, batch.inputs.begin() + (b + 1) * L);
    const std::vector<int32_t> y(batch.targets.begin() + b * L, batch.targets.begin() + (b + 1) * L);
    if (data::row_objective(c, 7, b) == data::Objective::causal) {
      ++causal;
      EXPECT_EQ(x, std::vector<int32_t>(row.begin(), row.end() - 1));
      EXPECT_EQ(y, std::vector<int32_t>(row.begin() + 1, row.end()));
      EXPECT_EQ(batch.prefix[b], 0);
    } else {
      const auto want = reference_infill_row(data::plan_infill(c.infill, L, 7, b), row, kTokens);
      EXPECT_EQ(x, want.x);
      EXPECT_EQ(y, want.y);
      EXPECT_EQ(batch.prefix[b], want.prefix);
    }
  }
  EXPECT_GT(causal, 0);
  EXPECT_LT(causal, B);
}
