// The sampler's top-k fast path (cl/sample.cl: sample_segments + sample_merge) against its full path
// (sample_rows, MAGELLANO_SAMPLE_FAST=0) on the same logits: the filtered probabilities and the
// drawn ids must be equal bit for bit (the merge sums the kept e values exactly as sample_rows
// does). The full path is checked against the float64 reference in test_sample.cpp, whose top-k
// cases (0 < K <= 128) now run the fast path too. Cases: random rows at GPT-2's vocabulary, odd V
// and odd segment counts, a whole row in one segment (V below the segments' work-group size),
// segments shorter than K, K = 1 and K = kSampleTopKMax, ties at the K-th value spread over
// segments, massive ties (a segment past its capacity, or more kept ids than the merge holds: both
// fall back to the full path on the device), -inf / NaN / +inf logits, batch > 1, the repetition
// penalty, many seeds; and a deliberately broken variant (segments keeping fewer than K) the check catches.
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>

#include "error_text.hpp"
#include "magellano/generate/sampler.hpp"
#include "op_case.hpp"
#include "reference.hpp"

using namespace mgtest;
using magellano::generate::kSampleTopKMax;
using magellano::generate::SampleFastShape;
using magellano::generate::Sampler;
using magellano::generate::SamplingParams;

namespace {

SamplingParams params(float t, int64_t k, float top_p, float penalty, uint64_t seed = 7) {
  SamplingParams p;
  p.temperature = t, p.top_k = k, p.top_p = top_p, p.repetition_penalty = penalty, p.seed = seed;
  return p;
}

std::vector<std::vector<int32_t>> random_context(size_t B, size_t V, size_t per_row, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<int32_t>> ctx(B);
  for (auto& row : ctx)
    for (size_t i = 0; i < per_row; ++i) row.push_back(int32_t(rng() % V));
  return ctx;
}

// A sampler on the full path, whatever the parameters.
Sampler full_sampler(int64_t B, int64_t V, const SamplingParams& p, const std::vector<std::vector<int32_t>>& ctx) {
  setenv("MAGELLANO_SAMPLE_FAST", "0", 1);
  Sampler s(test_ctx(), B, V, p, ctx);
  unsetenv("MAGELLANO_SAMPLE_FAST");
  return s;
}

// Runs both paths on the (B, V) logits x at steps 0 .. steps-1 and lists every difference in the
// probabilities (bitwise) or the ids, at most a few per step.
std::vector<std::string> differences(int64_t B, int64_t V, const std::vector<double>& x, const SamplingParams& p,
                                     const SampleFastShape& shape = {}, size_t context_per_row = 0,
                                     int steps = 3) {
  const auto ctx = context_per_row ? random_context(B, V, context_per_row, 5) : std::vector<std::vector<int32_t>>{};
  Sampler fast(test_ctx(), B, V, p, ctx, shape);
  Sampler full = full_sampler(B, V, p, ctx);
  EXPECT_TRUE(fast.fast());
  EXPECT_FALSE(full.fast());
  const Tensor logits = upload(Shape{B, V}, x);
  std::vector<std::string> out;
  for (int step = 0; step < steps; ++step) {
    Tensor ids_fast, ids_full;
    const auto pf = fast.probabilities(logits, step, &ids_fast).to_host();
    const auto pr = full.probabilities(logits, step, &ids_full).to_host();
    const auto a = ids_fast.to_host_i32(), b = ids_full.to_host_i32();
    size_t listed = 0;
    for (size_t i = 0; i < pf.size() && listed < 4; ++i)
      if (std::memcmp(&pf[i], &pr[i], sizeof(float)) != 0 && ++listed)
        out.push_back("step " + std::to_string(step) + " row " + std::to_string(i / V) + " id " +
                      std::to_string(i % V) + ": p " + std::to_string(pf[i]) + " (fast) vs " + std::to_string(pr[i]));
    for (int64_t r = 0; r < B; ++r)
      if (a[r] != b[r])
        out.push_back("step " + std::to_string(step) + " row " + std::to_string(r) + ": id " + std::to_string(a[r]) +
                      " (fast) vs " + std::to_string(b[r]));
  }
  return out;
}

void expect_same(const std::string& what, int64_t B, int64_t V, const std::vector<double>& x, const SamplingParams& p,
                 const SampleFastShape& shape = {}, size_t context_per_row = 0) {
  const auto d = differences(B, V, x, p, shape, context_per_row);
  std::string text;
  for (size_t i = 0; i < d.size() && i < 8; ++i) text += "\n  " + d[i];
  EXPECT_TRUE(d.empty()) << what << ": " << d.size() << " differences" << text;
}

}  // namespace

TEST(SampleFast, AppliesToTopKUpToTheMaximumWithATemperature) {
  using magellano::generate::sample_fast_applies;
  EXPECT_TRUE(sample_fast_applies(params(1.0f, 50, 0.9f, 1.1f), 50257));
  EXPECT_TRUE(sample_fast_applies(params(0.5f, kSampleTopKMax, 1.0f, 1.0f), 50257));
  EXPECT_TRUE(sample_fast_applies(params(1.0f, 1, 1.0f, 1.0f), 2));
  EXPECT_FALSE(sample_fast_applies(params(1.0f, 0, 0.9f, 1.0f), 50257));                   // top-k off
  EXPECT_FALSE(sample_fast_applies(params(1.0f, kSampleTopKMax + 1, 1.0f, 1.0f), 50257));  // K too large
  EXPECT_FALSE(sample_fast_applies(params(0.0f, 50, 1.0f, 1.0f), 50257));                  // greedy
  EXPECT_FALSE(sample_fast_applies(params(1.0f, 100, 1.0f, 1.0f), 100));                   // K = V: off
  setenv("MAGELLANO_SAMPLE_FAST", "0", 1);
  EXPECT_FALSE(sample_fast_applies(params(1.0f, 50, 0.9f, 1.1f), 50257));
  setenv("MAGELLANO_SAMPLE_FAST", "yes", 1);
  expect_error([] { sample_fast_applies(params(1.0f, 50, 0.9f, 1.1f), 50257); },
               "MAGELLANO_SAMPLE_FAST must be 0 (the full path) or 1; got 'yes'");
  unsetenv("MAGELLANO_SAMPLE_FAST");
  EXPECT_TRUE(Sampler(test_ctx(), 1, 1000, params(1.0f, 50, 1.0f, 1.0f)).fast());
  EXPECT_FALSE(Sampler(test_ctx(), 1, 1000, params(0.0f, 50, 1.0f, 1.0f)).fast());
  expect_error([] { Sampler(test_ctx(), 1, 1000, params(1.0f, 5, 1.0f, 1.0f), {}, {.segments = -1}); },
               "segments and segment_keep must be >= 0");
}

TEST(SampleFast, MatchesTheFullPathOnRandomRows) {
  expect_same("V=50257 all filters", 2, 50257, randn(2 * 50257, 1, 3.0), params(0.8f, 50, 0.9f, 1.2f), {}, 300);
  expect_same("V=1001 K=1 S=7", 3, 1001, randn(3 * 1001, 2, 2.0), params(1.0f, 1, 1.0f, 1.0f), {.segments = 7});
  expect_same("V=4097 K=max S=13", 2, 4097, randn(2 * 4097, 3, 2.0), params(1.3f, kSampleTopKMax, 0.95f, 1.0f),
              {.segments = 13});
  expect_same("V=100 in one segment", 1, 100, randn(100, 4, 1.0), params(1.0f, 10, 0.8f, 1.0f), {.segments = 1});
  expect_same("V=37 S=5", 2, 37, randn(2 * 37, 5, 1.0), params(0.9f, 3, 0.7f, 1.0f), {.segments = 5});
  expect_same("segments shorter than K", 2, 300, randn(2 * 300, 6, 1.5), params(1.0f, 20, 0.9f, 1.0f),
              {.segments = 128});
  expect_same("batch 5 with penalty", 5, 777, randn(5 * 777, 7, 2.0), params(1.0f, 20, 0.8f, 1.3f), {}, 60);
  expect_same("penalty < 1, no top-p", 3, 2001, randn(3 * 2001, 8, 2.0), params(0.7f, 64, 1.0f, 0.7f),
              {.segments = 9}, 100);
}

// The GPUs' shape on PoCL: sample_merge's work-group of 512 and the H100's 132 segments.
TEST(SampleFast, MatchesTheFullPathWithTheGpuShape) {
  setenv("MAGELLANO_SAMPLE_LOCAL", "512", 1);
  expect_same("V=50257 local 512 S=132", 2, 50257, randn(2 * 50257, 9, 3.0), params(1.0f, 50, 0.9f, 1.1f),
              {.segments = 132}, 300);
  expect_same("V=1000 local 512 S=132", 3, 1000, randn(3 * 1000, 10, 2.0), params(0.8f, 7, 0.8f, 1.0f),
              {.segments = 132});
  unsetenv("MAGELLANO_SAMPLE_LOCAL");
}

TEST(SampleFast, IdsEqualTheFullPathOverManySeeds) {
  const int64_t B = 4, V = 2003;
  const auto x = randn(B * V, 11, 2.0);
  for (uint64_t seed = 0; seed < 32; ++seed)
    expect_same("seed " + std::to_string(seed), B, V, x, params(1.0f, 40, 0.9f, 1.1f, seed), {.segments = 16}, 20);
}

TEST(SampleFast, TiesAtTheKthValueSpanningSegmentsAreAllKept) {
  // V = 1000 in 10 segments of 100: three ids above the rest, four tied at the 5th largest value,
  // each in another segment.
  const int64_t V = 1000;
  std::vector<double> x = randn(V, 21, 0.5);
  for (auto& v : x) v -= 3.0;
  for (int c : {17, 480, 999}) x[c] = 3.0;
  for (int c : {5, 250, 251, 730}) x[c] = 2.0;
  for (int64_t k : {4, 5, 7}) {  // the tie at the 4th..7th value: 3 + 4 kept
    const SamplingParams p = params(1.0f, k, 1.0f, 1.0f);
    Sampler s(test_ctx(), 1, V, p, {}, {.segments = 10});
    const auto probs = s.probabilities(upload(Shape{1, V}, x), 0).to_host();
    int kept = 0;
    for (float v : probs) kept += v > 0;
    EXPECT_EQ(kept, 7) << "K = " << k;
    expect_same("ties, K = " + std::to_string(k), 1, V, x, p, {.segments = 10});
  }
}

TEST(SampleFast, MassiveTiesFallBackToTheFullPath) {
  // All 3000 logits equal: each of 4 segments has 750 candidates, more than it can write.
  const std::vector<double> flat(3000, 0.25);
  Sampler s(test_ctx(), 1, 3000, params(1.0f, 10, 1.0f, 1.0f), {}, {.segments = 4});
  const auto probs = s.probabilities(upload(Shape{1, 3000}, flat), 0).to_host();
  for (float v : probs) ASSERT_EQ(v, probs[0]);
  EXPECT_NEAR(probs[0], 1.0 / 3000, 1e-9);
  expect_same("all equal", 1, 3000, flat, params(1.0f, 10, 0.5f, 1.0f), {.segments = 4});
  // 300 ids tied for the maximum, ~10 in each of 32 segments: no segment overflows, but the row
  // keeps 300 ids, more than the merge holds (2 kSampleTopKMax).
  std::vector<double> x = randn(4000, 31, 1.0);
  for (int i = 0; i < 300; ++i) x[size_t(i) * 13 + 7] = 9.0;
  expect_same("300 tied maxima", 1, 4000, x, params(1.0f, 10, 0.9f, 1.0f), {.segments = 32});
  // A segment past its capacity whose largest values come after its ties (ids 0-299 tied at its
  // K-th value, 5 larger ones at 400-404): it writes only the first CAP of its candidates, which
  // lack the 5 the row keeps, so the row must take the full path.
  std::vector<double> y(2000, -5.0);
  for (int c = 0; c < 300; ++c) y[c] = 1.0;
  for (int c = 400; c < 405; ++c) y[c] = 9.0;
  for (int c = 1000; c < 1020; ++c) y[c] = 5.0;  // the row's K-th value (K = 10) comes from segment 2
  {
    Sampler s(test_ctx(), 1, 2000, params(1.0f, 10, 1.0f, 1.0f), {}, {.segments = 4});
    const auto p = s.probabilities(upload(Shape{1, 2000}, y), 0).to_host();
    int kept = 0;
    for (float v : p) kept += v > 0;
    EXPECT_EQ(kept, 25);
    EXPECT_GT(p[402], p[1000]);
  }
  expect_same("overflowing segment", 1, 2000, y, params(1.0f, 10, 0.9f, 1.0f), {.segments = 4});
  // Both in a batch with an ordinary row.
  std::vector<double> mixed = randn(3 * 3000, 32, 2.0);
  std::copy(flat.begin(), flat.end(), mixed.begin() + 3000);
  expect_same("batch with one tied row", 3, 3000, mixed, params(0.9f, 30, 0.9f, 1.2f), {.segments = 4}, 30);
}

TEST(SampleFast, InfiniteAndNaNLogits) {
  const int64_t V = 1500, B = 6;
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<double> x = randn(B * V, 41, 2.0);
  for (int64_t c = 0; c < V; c += 7) x[c] = -inf;               // row 0: some -inf
  for (int64_t c = 3; c < V; c += 11) x[c] = nan;               //        and NaN
  for (int64_t c = 0; c < V; ++c) x[V + c] = -inf;              // row 1: all -inf
  x[2 * V + 40] = inf, x[2 * V + 900] = inf;                    // row 2: two +inf
  for (int64_t c = 0; c < V; ++c) x[3 * V + c] = c % 500 == 3 ? 1.0 : -inf;  // row 3: 3 finite, K = 10
  for (int64_t c = 0; c < V; ++c) x[4 * V + c] = nan;           // row 4: all NaN
  for (int64_t c = 0; c < V; ++c) x[5 * V + c] = c < 20 ? x[5 * V + c] : -inf;  // row 5: 20 finite
  expect_same("K=10", B, V, x, params(1.0f, 10, 0.9f, 1.0f), {.segments = 12});
  expect_same("K=10 penalty", B, V, x, params(0.6f, 10, 1.0f, 1.5f), {.segments = 5}, 40);
  expect_same("K=1", B, V, x, params(1.0f, 1, 1.0f, 1.0f), {.segments = 12});
}

TEST(SampleFast, TheCheckCatchesSegmentsKeepingTooFew) {
  // Segments searching for K/2 - 1 keep at most K - 2 candidates (their search stops at twice its
  // K), never the row's K-th. One segment:
  const auto x = randn(3 * 1000, 51, 2.0);
  EXPECT_FALSE(differences(3, 1000, x, params(1.0f, 20, 1.0f, 1.0f), {.segments = 1, .segment_keep = 9}).empty());
  // Rising logits: the row's top K all lie in the last of 4 segments.
  std::vector<double> rising(1000);
  for (int c = 0; c < 1000; ++c) rising[c] = 0.01 * c;
  EXPECT_FALSE(differences(1, 1000, rising, params(1.0f, 30, 0.95f, 1.0f), {.segments = 4, .segment_keep = 14}).empty());
  // The same with the right K passes.
  EXPECT_TRUE(differences(1, 1000, rising, params(1.0f, 30, 0.95f, 1.0f), {.segments = 4}).empty());
}
