// The sampling kernel (cl/sample.cl) against the float64 host reference of the filtered
// distribution (ref::sample_distribution, ref::philox, ref::sample_draw): repetition penalty, temperature / greedy, top-k, top-p, the kept set, the
// probabilities, the draw itself (device Philox vs host Philox and the inverse CDF), and the
// frequencies of many draws. Cases with 0 < top-k <= 128 and a temperature run the top-k fast
// path (sample_segments + sample_merge), the others the full path (sample_rows);
// test_sample_fast.cpp checks that both give the same bits.
//
// Tolerances:
// - probabilities: relative 5e-5 (+1e-12 absolute). The kernel's normaliser is an f32 sum of up
//   to V = 50,257 terms, about V/128 = 393 in one work-item's serial loop then 128 more in a
//   fixed serial pass: at most ~(393 + 128) * 2^-24 = 3.1e-5 relative, plus exp()'s 3 ulp.
// - kept sets are compared exactly; the test logits are random, and each case asserts that
//   the reference's top-p boundary is farther from p than the f32 error bound of the kernel's
//   cumulative mass (mass_error_bound: 2 (V/128 + 23) 2^-24), so rounding cannot move it.
// - the draw: the device id must equal the host's inverse CDF at the host Philox's u, except
//   when u lies within 1e-5 of a cumulative boundary (f32 vs f64 sums); such draws are skipped
//   and counted (expected: almost none).
// - frequencies: Pearson's chi-square over the kept ids against the reference probabilities,
//   below the 1 - 1e-4 quantile of chi-square with (kept - 1) degrees of freedom (Wilson-
//   Hilferty). The seed is fixed, so the test is deterministic; a correct sampler passes a
//   given seed with probability 1 - 1e-4. Ids outside the kept set must never be drawn.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <random>

#include "magellano/generate/sampler.hpp"
#include "magellano/ops/launch.hpp"
#include "op_case.hpp"
#include "reference.hpp"

using namespace mgtest;
using magellano::generate::Sampler;
using magellano::generate::SamplingParams;

namespace {

std::vector<float> random_logits(size_t n, uint64_t seed, double scale) {
  return to_f32(randn(n, seed, scale));
}

std::vector<uint8_t> random_seen(size_t B, size_t V, size_t per_row, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> seen(B * V, 0);
  for (size_t b = 0; b < B; ++b)
    for (size_t i = 0; i < per_row; ++i) seen[b * V + rng() % V] = 1;
  return seen;
}

std::vector<std::vector<int32_t>> seen_lists(const std::vector<uint8_t>& seen, size_t B, size_t V) {
  std::vector<std::vector<int32_t>> ctx(B);
  for (size_t b = 0; b < B; ++b)
    for (size_t c = 0; c < V; ++c)
      if (seen[b * V + c]) ctx[b].push_back(int32_t(c));
  return ctx;
}

// A bound on the f32 error of the kernel's cumulative masses, relative to the total: each sum
// runs V/128 terms in one work-item, a 7-level tree, then 16 candidate columns, each addition
// off by at most 2^-24 relative; doubled for exp()'s own error. Top-p cases whose reference
// boundary lies closer to p than this are ambiguous in f32 and are not used.
double mass_error_bound(size_t V) { return 2.0 * (double(V) / 128 + 7 + 16) * 0x1.0p-24; }

// Runs the kernel on B rows and checks every row's kept set, probabilities and draw.
void check_rows(const std::string& what, size_t B, size_t V, const SamplingParams& p, uint64_t data_seed,
                double logit_scale, size_t seen_per_row, int64_t step = 3) {
  SCOPED_TRACE(what);
  const auto x = random_logits(B * V, data_seed, logit_scale);
  const auto seen = random_seen(B, V, seen_per_row, data_seed + 1);
  Sampler sampler(test_ctx(), int64_t(B), int64_t(V), p, seen_lists(seen, B, V));
  Tensor ids;
  const auto probs = sampler.probabilities(upload(Shape{int64_t(B), int64_t(V)}, to_f64(x)), step, &ids).to_host();
  const auto got_ids = ids.to_host_i32();
  int skipped = 0;
  for (size_t b = 0; b < B; ++b) {
    const std::vector<float> row(x.begin() + b * V, x.begin() + (b + 1) * V);
    const std::vector<uint8_t> srow(seen.begin() + b * V, seen.begin() + (b + 1) * V);
    const ref::SampleDistribution r = ref::sample_distribution(row, srow, p);
    ASSERT_GT(r.p_margin, mass_error_bound(V)) << "row " << b << ": p is too close to a step of the mass; pick another seed";
    const std::vector<float> got(probs.begin() + b * V, probs.begin() + (b + 1) * V);
    size_t kept = 0;
    for (size_t c = 0; c < V; ++c) {
      ASSERT_EQ(got[c] > 0, bool(r.kept[c])) << "row " << b << " id " << c << ": kept set differs";
      kept += r.kept[c];
    }
    expect_close(got, r.probs, 5e-5, 1e-12, what + " probabilities, row " + std::to_string(b));
    ASSERT_TRUE(r.kept[got_ids[b]]) << "row " << b << " drew id " << got_ids[b] << ", which was filtered out";
    const int want = p.temperature <= 0 ? int(std::find(r.kept.begin(), r.kept.end(), true) - r.kept.begin())
                                        : ref::sample_draw(r, ref::philox_uniform(p.seed, int64_t(b), step), 1e-5);
    if (want < 0) ++skipped;
    else EXPECT_EQ(got_ids[b], want) << "row " << b << " (" << kept << " kept)";
  }
  EXPECT_LE(skipped, 1) << "too many draws at a boundary";
}

SamplingParams params(float t, int64_t k, float top_p, float penalty, uint64_t seed = 7) {
  SamplingParams p;
  p.temperature = t, p.top_k = k, p.top_p = top_p, p.repetition_penalty = penalty, p.seed = seed;
  return p;
}

// One sampling step over B rows of V logits with every filter on (perf only: the TESTs below
// check it); top-k 50 takes the fast path (MAGELLANO_SAMPLE_FAST=0: the full one). The cost is the
// full path's: it reads the logits and the seen-id mask (4 + 1 bytes an id), writes and re-reads
// its two (B, V) workspaces (16), and counts ~10 FLOPs an id (penalty, temperature, max, exp, sums
// and the top-k / top-p passes); the fast path moves fewer bytes for the same work.
CaseSpec sample_case(int64_t b, int64_t v) {
  return {"sample B" + std::to_string(b) + " V" + std::to_string(v), [=] {
            OpCase c;
            c.inputs = {{Shape{b, v}, randn(b * v, 71, 3.0), false}};
            auto sampler = std::make_shared<Sampler>(test_ctx(), b, v, params(0.8f, 50, 0.9f, 1.2f),
                                                     seen_lists(random_seen(b, v, 300, 72), b, v));
            c.device = [sampler](const std::vector<Tensor>& t) { return sampler->sample(t[0], 0); };
            c.sizes = {{"B", b}, {"V", v}, {"temperature", 0.8}, {"top_k", 50}, {"top_p", 0.9}, {"penalty", 1.2}};
            c.cost = {21.0 * b * v, 10.0 * b * v, 0, 0};
            return c;
          }};
}

const RegisterOp reg{{"sample", {}, sample_case(8, 50257)}};

}  // namespace

TEST(Sample, DevicePhiloxMatchesRandom123KnownAnswers) {
  // Random123 tests/kat_vectors, the three "philox4x32 10" lines: counter, key, result.
  const std::vector<std::array<uint32_t, 10>> kat = {
      {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
      {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d, 0x41c83b0e,
       0xa20bc7c6, 0x6d5451fd},
      {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb,
       0x5001e420, 0x24126ea1}};
  for (const auto& v : kat) {
    const auto host = ref::philox({v[0], v[1], v[2], v[3]}, {v[4], v[5]});
    Tensor out = Tensor::empty(test_ctx(), Shape{4}, DType::i32);
    magellano::ops::Launch(test_ctx(), "sample", "sample_philox")
        .arg(out).arg(int32_t(v[0])).arg(int32_t(v[1])).arg(int32_t(v[2])).arg(int32_t(v[3]))
        .arg(int32_t(v[4])).arg(int32_t(v[5])).run(1, 1);
    const auto dev = out.to_host_i32();
    for (int i = 0; i < 4; ++i) {
      EXPECT_EQ(host[i], v[6 + i]) << "host word " << i;
      EXPECT_EQ(uint32_t(dev[i]), v[6 + i]) << "device word " << i;
    }
  }
}

TEST(Sample, PlainSamplingIsTheSoftmax) {
  check_rows("T=1", 3, 1001, params(1.0f, 0, 1.0f, 1.0f), 11, 2.0, 0);
  check_rows("T=0.7", 2, 777, params(0.7f, 0, 1.0f, 1.0f), 12, 2.0, 0);
  check_rows("T=2.5", 2, 333, params(2.5f, 0, 1.0f, 1.0f), 13, 2.0, 0);
}

TEST(Sample, GreedyIsTheArgmaxWithTiesToTheLowestId) {
  check_rows("greedy", 4, 999, params(0.0f, 0, 1.0f, 1.0f), 21, 1.0, 0);
  std::vector<double> x(300, -1.0);
  x[250] = 3.0, x[17] = 3.0, x[200] = 3.0;  // three equal maxima
  Sampler s(test_ctx(), 1, 300, params(0.0f, 0, 1.0f, 1.0f));
  EXPECT_EQ(s.sample(upload(Shape{1, 300}, x), 0).to_host_i32()[0], 17);
}

TEST(Sample, TopKKeepsTheKLargest) {
  check_rows("k=1", 2, 513, params(1.0f, 1, 1.0f, 1.0f), 31, 2.0, 0);
  check_rows("k=5", 3, 1000, params(0.9f, 5, 1.0f, 1.0f), 32, 2.0, 0);
  check_rows("k=40", 2, 4097, params(1.3f, 40, 1.0f, 1.0f), 33, 3.0, 0);
  check_rows("k=V-1", 2, 130, params(1.0f, 129, 1.0f, 1.0f), 34, 1.0, 0);
  check_rows("k=V (off)", 2, 130, params(1.0f, 130, 1.0f, 1.0f), 34, 1.0, 0);
}

TEST(Sample, TopKKeepsEveryTieAtTheKthValue) {
  std::vector<double> x(200, 0.0);
  for (int c : {5, 9, 100, 150}) x[c] = 2.0;  // four ids tied for first
  x[60] = 3.0;
  Sampler s(test_ctx(), 1, 200, params(1.0f, 2, 1.0f, 1.0f));
  const auto p = s.probabilities(upload(Shape{1, 200}, x), 0).to_host();
  int kept = 0;
  for (float v : p) kept += v > 0;
  EXPECT_EQ(kept, 5);  // 60 and the four tied at the 2nd largest value, as HF's top-k
}

TEST(Sample, TopPKeepsTheSmallestTopSet) {
  check_rows("p=0.5", 3, 1000, params(1.0f, 0, 0.5f, 1.0f), 41, 2.0, 0);
  check_rows("p=0.9 T=0.8", 3, 2049, params(0.8f, 0, 0.9f, 1.0f), 42, 2.0, 0);
  check_rows("p=0.95 k=50", 2, 3000, params(1.0f, 50, 0.95f, 1.0f), 43, 2.5, 0);
}

TEST(Sample, TopPAtItsEdges) {
  // p = 0 keeps only the maximum: the draw is the argmax.
  check_rows("p=0", 3, 1000, params(1.0f, 0, 0.0f, 1.0f), 51, 2.0, 0);
  const auto x = to_f64(random_logits(3 * 1000, 52, 2.0));
  Sampler greedy(test_ctx(), 3, 1000, params(0.0f, 0, 1.0f, 1.0f));
  Sampler tiny_p(test_ctx(), 3, 1000, params(1.0f, 0, 1e-6f, 1.0f));
  const Tensor logits = upload(Shape{3, 1000}, x);
  EXPECT_EQ(greedy.sample(logits, 0).to_host_i32(), tiny_p.sample(logits, 0).to_host_i32());
  // p = 1 is no filter; p just below 1 drops at most a tail of mass 6e-8 of the total plus the
  // rounding of the fp32 mass sums the threshold search compares with p · total: each sum adds
  // V / LOCAL terms serially, then log2(LOCAL) tree levels, so ~(2 + 9) · 6e-8 ≈ 7e-7 of the total
  // for V = 1000 on GPUs' 512-wide groups (on the H100 an element of 1.7e-7 was dropped): atol 1e-6.
  // The same distribution within that, and the same draws.
  Sampler off(test_ctx(), 3, 1000, params(1.0f, 0, 1.0f, 1.0f));
  Sampler almost(test_ctx(), 3, 1000, params(1.0f, 0, 0.99999994f, 1.0f));
  Tensor ids_off, ids_almost;
  const auto p_off = off.probabilities(logits, 5, &ids_off).to_host();
  const auto p_almost = almost.probabilities(logits, 5, &ids_almost).to_host();
  expect_close(p_almost, to_f64(p_off), 1e-4, 1e-6, "p just below 1 vs p = 1");
  EXPECT_EQ(ids_off.to_host_i32(), ids_almost.to_host_i32());
}

TEST(Sample, RepetitionPenaltyAsHuggingFace) {
  check_rows("R=1.3", 3, 1000, params(1.0f, 0, 1.0f, 1.3f), 61, 2.0, 50);
  check_rows("R=0.7", 2, 500, params(1.0f, 0, 1.0f, 0.7f), 62, 2.0, 40);
  check_rows("R=2 greedy", 4, 300, params(0.0f, 0, 1.0f, 2.0f), 63, 1.0, 30);
  check_rows("R=1.2 k=20 p=0.8 T=0.9", 3, 700, params(0.9f, 20, 0.8f, 1.2f), 64, 2.0, 60);
  // The sampled id joins the context: greedy with a huge penalty never repeats an id.
  std::vector<double> x(64);
  for (int c = 0; c < 64; ++c) x[c] = 1.0 + 0.01 * c;
  Sampler s(test_ctx(), 1, 64, params(0.0f, 0, 1.0f, 1000.0f));
  const Tensor logits = upload(Shape{1, 64}, x);
  std::vector<int32_t> drawn;
  for (int t = 0; t < 5; ++t) drawn.push_back(s.sample(logits, t).to_host_i32()[0]);
  EXPECT_EQ(drawn, (std::vector<int32_t>{63, 62, 61, 60, 59}));
}

TEST(Sample, Gpt2SizedRowsAllFiltersTogether) {
  check_rows("V=50257", 2, 50257, params(0.8f, 50, 0.9f, 1.2f), 71, 3.0, 300);
  check_rows("V=50257 p only", 1, 50257, params(1.0f, 0, 0.7f, 1.0f), 74, 4.0, 0);
}

// The GPUs' work-group size (512), run here on PoCL: the same checks (kept sets, probabilities,
// the draw against the host's inverse CDF); its sums are shorter serial loops, within the same bound.
TEST(Sample, Gpt2SizedRowsWithTheGpuWorkGroupSize) {
  setenv("MAGELLANO_SAMPLE_LOCAL", "512", 1);
  check_rows("V=50257 local 512", 2, 50257, params(0.8f, 50, 0.9f, 1.2f), 71, 3.0, 300);
  check_rows("V=1000 local 512", 3, 1000, params(1.3f, 7, 0.8f, 1.0f), 76, 2.0, 20);
  unsetenv("MAGELLANO_SAMPLE_LOCAL");
}

TEST(Sample, SameSeedSameIdsDifferentSeedsDiffer) {
  const auto x = to_f64(random_logits(8 * 500, 81, 1.0));
  auto draw = [&](uint64_t seed, int64_t step) {
    Sampler s(test_ctx(), 8, 500, params(1.0f, 0, 1.0f, 1.0f, seed));
    return s.sample(upload(Shape{8, 500}, x), step).to_host_i32();
  };
  EXPECT_EQ(draw(5, 0), draw(5, 0));
  EXPECT_NE(draw(5, 0), draw(6, 0));
  EXPECT_NE(draw(5, 0), draw(5, 1));
}

TEST(Sample, FrequenciesMatchTheFilteredDistribution) {
  const int64_t V = 40, rows = 1024, steps = 10;
  const auto base = random_logits(V, 91, 1.5);
  std::vector<uint8_t> seen_row(V, 0);
  for (int c : {3, 7, 11, 30}) seen_row[c] = 1;
  const SamplingParams p = params(0.8f, 20, 0.9f, 1.3f, 1234);
  const ref::SampleDistribution r = ref::sample_distribution(base, seen_row, p);
  ASSERT_GT(r.p_margin, mass_error_bound(V));
  std::vector<double> x;
  std::vector<std::vector<int32_t>> ctx(rows);
  for (int64_t b = 0; b < rows; ++b) {
    x.insert(x.end(), base.begin(), base.end());
    for (int64_t c = 0; c < V; ++c)
      if (seen_row[c]) ctx[b].push_back(int32_t(c));
  }
  Sampler s(test_ctx(), rows, V, p, ctx);
  const Tensor logits = upload(Shape{rows, V}, x);
  std::vector<double> count(V, 0);
  for (int64_t t = 0; t < steps; ++t) {
    Tensor ids;
    s.probabilities(logits, t, &ids);  // unlike sample(), leaves the context as it is
    for (int32_t id : ids.to_host_i32()) count[id] += 1;
  }
  const double n = double(rows * steps);
  double chi2 = 0;
  int kept = 0;
  for (int64_t c = 0; c < V; ++c) {
    if (!r.kept[c]) {
      EXPECT_EQ(count[c], 0) << "id " << c << " was filtered out but drawn";
      continue;
    }
    ++kept;
    const double e = n * r.probs[c];
    chi2 += (count[c] - e) * (count[c] - e) / e;
  }
  ASSERT_GE(kept, 5);
  const double df = kept - 1, z = 3.719;  // the standard normal's 1 - 1e-4 quantile
  const double a = 2.0 / (9.0 * df);
  const double critical = df * std::pow(1 - a + z * std::sqrt(a), 3);
  EXPECT_LT(chi2, critical) << kept << " kept ids, " << n << " draws";
}
