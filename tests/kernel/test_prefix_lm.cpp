// Prefix-LM through the whole model (nn::Model::forward / loss with prefix lengths): logits and
// the suffix-only loss against the float64 hybrid reference (tests/support/hybrid_reference.hpp,
// whose attention blocks use ref::attention with the prefix); which positions see which tokens
// (a prefix position sees the whole prefix; no position sees a later suffix token; a suffix
// position sees every prefix token); a model that ignores the prefix is caught.
// Tolerances: logits 1e-4 / 1e-4 and the loss 1e-5 relative, as the causal hybrid test
// (test_hybrid_model.cpp): fp32 through six blocks against float64. The visibility checks are
// exact: a token a position cannot see leaves its logits bit for bit unchanged (the fused kernel
// skips or zero-weights it), one it sees moves them by far more than rounding (> 1e-4).
#include <gtest/gtest.h>

#include <cmath>

#include "harness.hpp"
#include "hybrid_reference.hpp"
#include "magellano/nn/model.hpp"
#include "magellano/train/checkpoint.hpp"
#include "small_model.hpp"

using namespace mgtest;
namespace nn = magellano::nn;
namespace train = magellano::train;
using nlohmann::json;

namespace {

// Mamba, attention (GQA 2, rotary), MLP and MoE blocks: the prefix only changes the attention
// blocks, and the Mamba block in front of them stays causal.
train::Config prefix_model_config() {
  json j = train::Config::defaults().to_json();
  j["model"] = json::parse(R"({
    "vocab_size": 41, "dim": 32, "layers": "MAFAE", "d_state": 8, "dt_rank": 4,
    "attention": {"heads": 4, "kv_heads": 2, "rope_theta": 10000.0},
    "moe": {"experts": 4, "top_k": 2, "hidden": 24}, "mlp": {"hidden": 20}})");
  return train::Config::from_json(j);
}

struct Fixture {
  train::Config c = prefix_model_config();
  nn::Model model{test_ctx(), train::model_spec(c), 3};
  ref::Weights w = ref::random_weights(model, 21);
  Fixture() { ref::upload(model, w); }
  std::vector<float> logits(const std::vector<int32_t>& ids, int64_t B, int64_t L, const std::vector<int32_t>& prefix) {
    magellano::autograd::NoGradScope no_grad;
    const Tensor p = prefix.empty() ? Tensor() : upload_i32(Shape{B}, prefix);
    return model.forward(upload_i32(Shape{B, L}, ids), nullptr, 0, p).logits.to_host();
  }
};

std::vector<int32_t> ids_of(int64_t n, int64_t vocab, uint64_t seed) {
  std::vector<int32_t> ids = small_model_ids(n, seed);
  for (auto& id : ids) id %= vocab;
  return ids;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b, int64_t from, int64_t n) {
  double m = 0;
  for (int64_t i = from; i < from + n; ++i) m = std::max(m, std::abs(double(a[i]) - double(b[i])));
  return m;
}

}  // namespace

TEST(PrefixLm, LogitsAndSuffixLossMatchTheFloat64Reference) {
  Fixture f;
  const int64_t B = 3, L = 13, V = f.c.model.vocab_size;
  const auto ids = ids_of(B * L, V, 31);
  const std::vector<int32_t> prefix = {7, 0, 13};  // mid-sequence, none (causal), the whole row
  const std::vector<int64_t> prefix64(prefix.begin(), prefix.end());
  const Vec want = ref::hybrid_logits(f.c.model, f.w, ids, B, L, prefix64);
  expect_close(f.logits(ids, B, L, prefix), want, 1e-4, 1e-4, "prefix-LM logits");
  // The suffix-only loss: targets t >= P - 1 counted, the rest -100.
  std::vector<int32_t> targets(B * L, -100);
  double sum = 0;
  int64_t counted = 0;
  for (int64_t r = 0; r < B; ++r)
    for (int64_t t = std::max<int64_t>(0, prefix[r] - 1); t + 1 < L; ++t) {
      targets[r * L + t] = ids[r * L + t + 1];
      const double* row = &want[(r * L + t) * V];
      double mx = row[0], z = 0;
      for (int64_t v = 0; v < V; ++v) mx = std::max(mx, row[v]);
      for (int64_t v = 0; v < V; ++v) z += std::exp(row[v] - mx);
      sum += mx + std::log(z) - row[targets[r * L + t]];
      ++counted;
    }
  magellano::autograd::NoGradScope no_grad;
  const double ce = f.model
                        .loss(upload_i32(Shape{B, L}, ids), upload_i32(Shape{B, L}, targets),
                              upload_i32(Shape{B}, prefix))
                        .ce.item();
  EXPECT_NEAR(ce, sum / counted, 1e-5 * sum / counted);
  // The broken variant: the same model with the prefix ignored differs from the reference at the
  // prefix positions of row 0 (by far more than the tolerance), so the comparison above can fail.
  const auto causal = f.logits(ids, B, L, {});
  std::vector<float> want_f(want.begin(), want.end());
  EXPECT_GT(max_abs_diff(causal, want_f, 0, (prefix[0] - 1) * V), 1e-3);
}

TEST(PrefixLm, PrefixPositionsSeeTheWholePrefixAndNoPositionSeesALaterSuffixToken) {
  Fixture f;
  const int64_t L = 12, P = 7, V = f.c.model.vocab_size;
  const auto ids = ids_of(L, V, 41);
  const auto base = f.logits(ids, 1, L, {int32_t(P)});
  for (int64_t s = 1; s < L; ++s) {  // change token s
    auto changed_ids = ids;
    changed_ids[s] = (changed_ids[s] + 17) % V;
    const auto y = f.logits(changed_ids, 1, L, {int32_t(P)});
    for (int64_t t = 0; t < s; ++t) {  // positions before s
      const double d = max_abs_diff(y, base, t * V, V);
      if (s < P) EXPECT_GT(d, 1e-4) << "prefix position " << t << " must see prefix token " << s;
      else EXPECT_EQ(d, 0.0) << "position " << t << " must not see suffix token " << s;
    }
    for (int64_t t = std::max(s, P); t < L; ++t)  // suffix positions at or after s see it
      EXPECT_GT(max_abs_diff(y, base, t * V, V), 1e-4) << "suffix position " << t << ", token " << s;
  }
}
