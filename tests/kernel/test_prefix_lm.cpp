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

#include <algorithm>
#include <string>
#include <cmath>
#include <ostream>

#include "error_text.hpp"
#include "harness.hpp"
#include "hybrid_reference.hpp"
#include "magellano/generate/generator.hpp"
#include "magellano/generate/infill.hpp"
#include "magellano/nn/model.hpp"
#include "magellano/train/checkpoint.hpp"
#include "small_model.hpp"

using namespace mgtest;
namespace nn = magellano::nn;
namespace train = magellano::train;
using nlohmann::json;

namespace {

// Mamba, attention (GQA 2, rotary), MLP and MoE blocks ("MAFAE"; "SAFME" adds a Mamba2 block in
// front): without bidirectional_prefix the prefix only changes the attention blocks, and the Mamba
// blocks in front of them stay causal.
train::Config prefix_model_config(bool bidirectional, const std::string& layers = "MAFAE") {
  json j = train::Config::defaults().to_json();
  j["model"] = json::parse(R"({
    "vocab_size": 41, "dim": 32, "d_state": 8, "dt_rank": 4, "mamba2": {"head_dim": 16, "d_state": 8},
    "attention": {"heads": 4, "kv_heads": 2, "rope_theta": 10000.0},
    "moe": {"experts": 4, "top_k": 2, "hidden": 24}, "mlp": {"hidden": 20}})");
  j["model"]["layers"] = layers;
  j["model"]["bidirectional_prefix"] = bidirectional;
  return train::Config::from_json(j);
}

// The PrefixLm tests' parameter: model.bidirectional_prefix and the layers.
struct Stack {
  bool bidirectional;
  const char* layers;
};
void PrintTo(const Stack& s, std::ostream* os) { *os << s.layers << (s.bidirectional ? ", bidirectional" : ""); }

struct Fixture {
  explicit Fixture(bool bidirectional = false, const std::string& layers = "MAFAE")
      : c(prefix_model_config(bidirectional, layers)) {
    ref::upload(model, w);
  }
  explicit Fixture(const Stack& s) : Fixture(s.bidirectional, s.layers) {}
  train::Config c;
  nn::Model model{test_ctx(), train::model_spec(c), 3};
  ref::Weights w = ref::random_weights(model, 21);
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

class PrefixLm : public testing::TestWithParam<Stack> {};

TEST_P(PrefixLm, LogitsAndSuffixLossMatchTheFloat64Reference) {
  Fixture f(GetParam());
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

TEST_P(PrefixLm, PrefixPositionsSeeTheWholePrefixAndNoPositionSeesALaterSuffixToken) {
  Fixture f(GetParam());
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

// Generation with the prompt as the prefix: each greedy token equals the argmax of a full
// prefix-LM forward over prompt + the tokens before it (prefix = the prompt), for two prompts of
// different lengths decoded together; and the prompt really is read bidirectionally (the first
// token's logits differ from the causal prefill's).
TEST_P(PrefixLm, GenerationTreatsThePromptAsThePrefix) {
  Fixture f(GetParam());
  const int64_t V = f.c.model.vocab_size, n = 6;
  const std::vector<std::vector<int32_t>> prompts = {ids_of(7, V, 51), ids_of(4, V, 52)};
  magellano::generate::GenerationConfig gc;
  gc.max_new_tokens = n, gc.sampling.temperature = 0, gc.prompt_as_prefix = true;
  const auto out = magellano::generate::generate(f.model, prompts, gc);
  for (size_t r = 0; r < prompts.size(); ++r) {
    ASSERT_EQ(out[r].ids.size(), size_t(n));
    std::vector<int32_t> seq = prompts[r];
    const auto P = static_cast<int32_t>(prompts[r].size());
    for (int64_t k = 0; k < n; ++k) {
      const int64_t L = static_cast<int64_t>(seq.size());
      const auto logits = f.logits(seq, 1, L, {P});
      const float* last = &logits[(L - 1) * V];
      EXPECT_EQ(out[r].ids[k], std::max_element(last, last + V) - last) << "prompt " << r << ", token " << k;
      seq.push_back(out[r].ids[k]);
    }
  }
  magellano::autograd::NoGradScope no_grad;
  const auto& p0 = prompts[0];
  const auto P0 = static_cast<int64_t>(p0.size());
  const auto with = magellano::generate::prefill(f.model, {p0}, true).logits.to_host();
  const auto without = magellano::generate::prefill(f.model, {p0}, false).logits.to_host();
  const auto full = f.logits(p0, 1, P0, {int32_t(P0)});
  expect_close(with, to_f64(std::vector<float>(full.end() - V, full.end())), 1e-5, 1e-5, "prefix prefill");
  EXPECT_GT(max_abs_diff(with, without, 0, V), 1e-3);
}

// Blank infilling's decoding (generate/infill.hpp): part A (two [MASK]s) is the prefix and the
// blanks' spans come after it causally. Each greedy span token equals the argmax of a full forward
// over A ++ [START] span_1 ++ [START] ... with prefix |A|; the filled ids are A with each [MASK]
// replaced by its span. The prefill with prefix_tokens = |A| equals that full forward's last
// logits (1e-5, as above) and differs from a causal prefill (> 1e-3): the prefix is really read.
TEST_P(PrefixLm, InfillDecodesEachBlankAfterPartAAsThePrefix) {
  Fixture f(GetParam());
  const int64_t V = f.c.model.vocab_size, n = 3;
  const auto tokens = magellano::data::infill_tokens(V);
  std::vector<int32_t> a = ids_of(9, V - 3, 71);
  a[2] = a[6] = tokens.mask;
  const auto P = static_cast<int32_t>(a.size());
  magellano::generate::GenerationConfig gc;
  gc.max_new_tokens = n, gc.sampling.temperature = 0;
  const auto out = magellano::generate::fill_blanks(f.model, a, tokens, gc);
  ASSERT_EQ(out.spans.size(), 2u);
  std::vector<int32_t> seq = a, filled;
  for (size_t b = 0; b < 2; ++b) {
    seq.push_back(tokens.start);
    for (size_t k = 0; k <= out.spans[b].size() && k < size_t(n); ++k) {
      const int64_t L = static_cast<int64_t>(seq.size());
      const auto logits = f.logits(seq, 1, L, {P});
      const float* last = &logits[(L - 1) * V];
      const auto argmax = static_cast<int32_t>(std::max_element(last, last + V) - last);
      if (k == out.spans[b].size()) {  // the blank ended on [END], [START] or [MASK]
        EXPECT_EQ(out.finish[b], magellano::generate::FinishReason::eos);
        EXPECT_GE(argmax, tokens.mask);
        break;
      }
      EXPECT_EQ(out.spans[b][k], argmax) << "blank " << b << ", token " << k;
      seq.push_back(out.spans[b][k]);
    }
  }
  size_t blank = 0;
  for (const int32_t id : a) {
    if (id != tokens.mask) filled.push_back(id);
    else filled.insert(filled.end(), out.spans[blank].begin(), out.spans[blank].end()), ++blank;
  }
  EXPECT_EQ(out.filled, filled);
  magellano::autograd::NoGradScope no_grad;
  std::vector<int32_t> prompt = a;
  prompt.push_back(tokens.start);
  const auto L = static_cast<int64_t>(prompt.size());
  const auto with = magellano::generate::prefill(f.model, {prompt}, false, P).logits.to_host();
  const auto causal = magellano::generate::prefill(f.model, {prompt}, false, 0).logits.to_host();
  const auto full = f.logits(prompt, 1, L, {P});
  expect_close(with, to_f64(std::vector<float>(full.end() - V, full.end())), 1e-5, 1e-5, "part A prefill");
  EXPECT_GT(max_abs_diff(with, causal, 0, V), 1e-3);
  mgtest::expect_error([&] { magellano::generate::fill_blanks(f.model, {1, 2}, tokens, gc); }, "the input holds no [MASK]");
}

INSTANTIATE_TEST_SUITE_P(Mamba, PrefixLm,
                         testing::Values(Stack{false, "MAFAE"}, Stack{true, "MAFAE"}, Stack{false, "SAFME"},
                                         Stack{true, "SAFME"}),
                         [](const testing::TestParamInfo<Stack>& i) {
                           const std::string mamba2 = std::string(i.param.layers).find('S') != std::string::npos
                                                          ? "Mamba2" : "";
                           return mamba2 + (i.param.bidirectional ? "BidirectionalPrefix" : "CausalMamba");
                         });

// bidirectional_prefix through Mamba ("MFM") or Mamba2 ("SFS") blocks alone (no attention): a
// prefix position sees later prefix tokens only through the reverse scan, and still no later
// suffix token; the reverse branch is really there (the model without it differs at prefix
// positions, by far more than rounding) and the float64 reference (which runs each prefix
// reversed as a sequence of its own) agrees; the backward goes through the reverse branch (every
// parameter's gradient differs from the causal model's).
class PrefixLmMamba : public testing::TestWithParam<const char*> {};  // param: the layers

TEST_P(PrefixLmMamba, ReverseScanOverThePrefixOnly) {
  json j = train::Config::defaults().to_json();
  j["model"] = json::parse(R"({"vocab_size": 37, "dim": 16, "d_state": 8, "dt_rank": 2, "mlp": {"hidden": 24},
                               "mamba2": {"head_dim": 8, "d_state": 8}, "bidirectional_prefix": true})");
  j["model"]["layers"] = GetParam();
  const train::Config c = train::Config::from_json(j);
  nn::Model model(test_ctx(), train::model_spec(c), 5);
  const ref::Weights w = ref::random_weights(model, 23);
  ref::upload(model, w);
  const int64_t L = 10, P = 6, V = c.model.vocab_size;
  const auto ids = ids_of(L, V, 61);
  auto logits = [&](const std::vector<int32_t>& x, const std::vector<int32_t>& p) {
    magellano::autograd::NoGradScope no_grad;
    const Tensor pt = p.empty() ? Tensor() : upload_i32(Shape{1}, p);
    return model.forward(upload_i32(Shape{1, L}, x), nullptr, 0, pt).logits.to_host();
  };
  const auto base = logits(ids, {int32_t(P)});
  expect_close(base, ref::hybrid_logits(c.model, w, ids, 1, L, {P}), 1e-4, 1e-4, "bidirectional Mamba logits");
  const auto causal = logits(ids, {});
  EXPECT_GT(max_abs_diff(base, causal, 0, (P - 1) * V), 1e-3);  // prefix positions differ
  for (int64_t s = 1; s < L; ++s) {
    auto x = ids;
    x[s] = (x[s] + 11) % V;
    const auto y = logits(x, {int32_t(P)});
    for (int64_t t = 0; t < s; ++t) {
      if (s < P) EXPECT_GT(max_abs_diff(y, base, t * V, V), 1e-4) << "prefix position " << t << ", token " << s;
      else EXPECT_EQ(max_abs_diff(y, base, t * V, V), 0.0) << "position " << t << ", suffix token " << s;
    }
  }
  // The broken variant, the reversal applied to the suffix too (the whole row reversed): suffix
  // position P then sees the last token, which the check above catches.
  {
    auto x = ids;
    x[L - 1] = (x[L - 1] + 11) % V;
    EXPECT_GT(max_abs_diff(logits(x, {int32_t(L)}), logits(ids, {int32_t(L)}), P * V, V), 1e-4);
  }
  // Gradients flow through the reverse branch too: every parameter of the Mamba blocks gets one,
  // and the embedding rows of the prefix tokens differ from the causal model's gradient.
  auto grads = [&](const std::vector<int32_t>& p) {
    for (auto& prm : model.parameters()) prm.tensor.zero_grad();
    std::vector<int32_t> targets(ids.begin() + 1, ids.end());
    targets.push_back(-100);
    const Tensor pt = p.empty() ? Tensor() : upload_i32(Shape{1}, p);
    magellano::autograd::backward(model.loss(upload_i32(Shape{1, L}, ids), upload_i32(Shape{1, L}, targets), pt).loss);
    std::vector<std::vector<float>> g;
    for (auto& prm : model.parameters()) g.push_back(prm.tensor.grad().to_host());
    return g;
  };
  const auto gb = grads({int32_t(P)}), gc = grads({});
  size_t differ = 0;
  for (size_t i = 0; i < gb.size(); ++i) differ += gb[i] != gc[i];
  EXPECT_GE(differ, gb.size() - 2) << "parameters whose gradient the reverse branch changes";
  // The reverse branch is differentiated: the device's gradient of the Mamba mixers' weights
  // equals central differences of the float64 loss with the prefix (a branch whose gradient is
  // dropped, e.g. through a non-differentiable view, leaves these off by its whole share).
  // Tolerance 2e-3 relative + 1e-6: fp32 gradients through three blocks against float64
  // differences with step 1e-6 (truncation ~1e-10).
  const auto params = model.parameters();
  auto ref_loss = [&](const ref::Weights& wv) {
    const ref::Vec lg = ref::hybrid_logits(c.model, wv, ids, 1, L, {P});
    double ce = 0;
    for (int64_t t = 0; t + 1 < L; ++t) {
      double mx = -1e300, se = 0;
      for (int64_t v = 0; v < V; ++v) mx = std::max(mx, lg[t * V + v]);
      for (int64_t v = 0; v < V; ++v) se += std::exp(lg[t * V + v] - mx);
      ce += mx + std::log(se) - lg[t * V + ids[t + 1]];
    }
    return ce / double(L - 1);
  };
  for (size_t i = 0; i < params.size(); ++i) {
    const std::string& name = params[i].name;
    if (name.find("mixer.in_proj") == std::string::npos && name.find("mixer.x_proj") == std::string::npos) continue;
    const std::vector<size_t> at{0, w.at(name).size() / 2, w.at(name).size() - 1};
    const ref::Vec fd = finite_diff([&](const ref::Vec& x) {
      ref::Weights wv = w;
      wv[name] = x;
      return ref_loss(wv);
    }, w.at(name), at);
    for (size_t j = 0; j < at.size(); ++j)
      EXPECT_NEAR(gb[i][at[j]], fd[j], 1e-6 + 2e-3 * std::abs(fd[j])) << name << "[" << at[j] << "]";
  }
  // Checkpointed segments replay the reverse branch with the same gathers: the same bits.
  model.set_checkpoint_every(1);
  EXPECT_EQ(grads({int32_t(P)}), gb) << "gradients with checkpoint_every = 1";
}

INSTANTIATE_TEST_SUITE_P(Layers, PrefixLmMamba, testing::Values("MFM", "SFS"),
                         [](const testing::TestParamInfo<const char*>& i) {
                           return std::string(i.param) == "MFM" ? "Mamba" : "Mamba2";
                         });

// A model with GLM's 2D positions (attention rope_2d): ordinary text has ids (t, 0), so a forward
// without ids equals one with ids (t, 0) bit for bit, and decoding (prefill, then steps through
// rope_2d_at) gives the full forward's logits (1e-5, as above); infilling ids (a [START] at its
// [MASK]'s position, block 1) change the logits there, and the model differs from the same
// weights with ordinary rotary (> 1e-3): the ids really reach the attention.
TEST(PrefixLmGlm2d, OrdinaryTextDecodesAsItsForwardAndIdsMatter) {
  train::Config c = prefix_model_config(false);
  c.model.infill_positions = magellano::data::InfillPositions::glm2d;
  nn::Model model(test_ctx(), train::model_spec(c), 3);
  nn::Model plain(test_ctx(), train::model_spec(prefix_model_config(false)), 3);
  const ref::Weights w = ref::random_weights(model, 21);
  ref::upload(model, w);
  ref::upload(plain, w);
  const int64_t L = 9, V = c.model.vocab_size;
  const auto ids = ids_of(L, V, 5);
  magellano::autograd::NoGradScope no_grad;
  std::vector<int32_t> seq(2 * L, 0), moved;
  for (int64_t t = 0; t < L; ++t) seq[2 * t] = static_cast<int32_t>(t);
  const auto x = upload_i32(Shape{1, L}, ids);
  const auto full = model.forward(x).logits.to_host();
  EXPECT_EQ(full, model.forward(x, nullptr, 0, Tensor(), upload_i32(Shape{1, L, 2}, seq)).logits.to_host());
  EXPECT_GT(max_abs_diff(full, plain.forward(x).logits.to_host(), 0, L * V), 1e-3);
  nn::DecodeState state;
  const std::vector<int32_t> head(ids.begin(), ids.begin() + L - 2);
  const auto first = model.prefill(upload_i32(Shape{1, L - 2}, head), state).to_host();
  expect_close(first, to_f64(std::vector<float>(full.begin() + (L - 3) * V, full.begin() + (L - 2) * V)), 1e-5, 1e-5,
               "glm2d prefill");
  for (int64_t t = L - 2; t < L; ++t) {
    const auto step = model.step(upload_i32(Shape{1}, {ids[t]}), state).to_host();
    expect_close(step, to_f64(std::vector<float>(full.begin() + t * V, full.begin() + (t + 1) * V)), 1e-5, 1e-5,
                 "glm2d step");
  }
  moved = seq;
  moved[2 * (L - 1)] = 2, moved[2 * (L - 1) + 1] = 1;  // the last input as a [START] of the blank at 2
  const auto infill = model.forward(x, nullptr, 0, Tensor(), upload_i32(Shape{1, L, 2}, moved)).logits.to_host();
  EXPECT_EQ(max_abs_diff(infill, full, 0, (L - 1) * V), 0.0);  // earlier positions never see it
  EXPECT_GT(max_abs_diff(infill, full, (L - 1) * V, V), 1e-4);
  // Decoding with explicit ids: prefill with the ids, then a step given the ids (2, 1) equals the
  // forward with those ids (the step's rotation is rope_2d's, not rope_2d_at's (t, 0)).
  nn::DecodeState ids_state;
  const std::vector<int32_t> upto(ids.begin(), ids.end() - 1), upto_ids(moved.begin(), moved.end() - 2);
  const auto pre = model.prefill(upload_i32(Shape{1, L - 1}, upto), ids_state, 0, Tensor(),
                                 upload_i32(Shape{1, L - 1, 2}, upto_ids)).to_host();
  expect_close(pre, to_f64(std::vector<float>(infill.begin() + (L - 2) * V, infill.begin() + (L - 1) * V)), 1e-5,
               1e-5, "glm2d prefill with ids");
  const auto at = model.step(upload_i32(Shape{1}, {ids[L - 1]}), ids_state, upload_i32(Shape{1, 2}, {2, 1})).to_host();
  expect_close(at, to_f64(std::vector<float>(infill.begin() + (L - 1) * V, infill.end())), 1e-5, 1e-5,
               "glm2d step with ids (2, 1)");
}

// Blank infilling's decoding with GLM's 2D positions (KV-cached: a prefill, then a step per token
// with its ids): each greedy span token equals the argmax of a full forward over A ++ [START] span_1 ++ [START] ... with prefix |A| and the 2D ids written out
// here (A: (t, 0); blank j's [START] and tokens: (the index of its [MASK], 1, 2, ...)); the same
// forward with sequential ids predicts otherwise somewhere (> 1e-4), so the ids are really used.
TEST(PrefixLmGlm2d, InfillDecodesEachBlankAtItsMasksPosition) {
  train::Config c = prefix_model_config(true);
  c.model.infill_positions = magellano::data::InfillPositions::glm2d;
  nn::Model model(test_ctx(), train::model_spec(c), 3);
  ref::upload(model, ref::random_weights(model, 21));
  const int64_t V = c.model.vocab_size, n = 3;
  const auto tokens = magellano::data::infill_tokens(V);
  std::vector<int32_t> a = ids_of(9, V - 3, 71);
  a[2] = a[6] = tokens.mask;
  const auto P = static_cast<int32_t>(a.size());
  magellano::generate::GenerationConfig gc;
  gc.max_new_tokens = n, gc.sampling.temperature = 0;
  const auto out = magellano::generate::fill_blanks(model, a, tokens, gc);
  ASSERT_EQ(out.spans.size(), 2u);
  magellano::autograd::NoGradScope no_grad;
  std::vector<int32_t> seq = a, ids;
  for (int32_t t = 0; t < P; ++t) ids.insert(ids.end(), {t, 0});
  double moved = 0;
  const int32_t mask_at[2] = {2, 6};
  for (size_t b = 0; b < 2; ++b) {
    seq.push_back(tokens.start);
    ids.insert(ids.end(), {mask_at[b], 1});
    for (size_t k = 0; k <= out.spans[b].size() && k < size_t(n); ++k) {
      const auto L = static_cast<int64_t>(seq.size());
      const auto logits = model.forward(upload_i32(Shape{1, L}, seq), nullptr, 0, upload_i32(Shape{1}, {P}),
                                        upload_i32(Shape{1, L, 2}, ids)).logits.to_host();
      const auto plain = model.forward(upload_i32(Shape{1, L}, seq), nullptr, 0, upload_i32(Shape{1}, {P})).logits.to_host();
      moved = std::max(moved, max_abs_diff(logits, plain, (L - 1) * V, V));
      const float* last = &logits[(L - 1) * V];
      const auto argmax = static_cast<int32_t>(std::max_element(last, last + V) - last);
      if (k == out.spans[b].size()) {  // the blank ended on [END], [START] or [MASK]
        EXPECT_EQ(out.finish[b], magellano::generate::FinishReason::eos);
        EXPECT_GE(argmax, tokens.mask);
        break;
      }
      EXPECT_EQ(out.spans[b][k], argmax) << "blank " << b << ", token " << k;
      seq.push_back(out.spans[b][k]);
      ids.insert(ids.end(), {mask_at[b], static_cast<int32_t>(k + 2)});
    }
  }
  EXPECT_GT(moved, 1e-4);
}
