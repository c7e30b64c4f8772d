// Generation with the recurrent state on the `tiny` preset's model (random weights): greedy
// decoding reproduces the parallel forward's argmax, seeds reproduce, the samplers' edges
// (top-k = 1, top-p -> 0 and = 1) behave, a batch of prompts of different lengths gives each
// prompt's own ids, and end-of-text and stop strings end a row where they should.
//
// Tolerance: step decoding and the parallel forward agree to about 1e-5 on these logits
// (tests/kernel/test_model.cpp), so an argmax can only differ where the top two logits are
// closer than that. Positions whose top-two gap is below 1e-4 are not compared (and counted:
// at most 2 of the positions may be skipped, else the test is not testing anything).
#include <algorithm>
#include <filesystem>

#include "harness.hpp"
#include "project_files.hpp"
#include "magellano/generate/generator.hpp"
#include "magellano/train/checkpoint.hpp"
#include "magellano/train/config.hpp"

using namespace mgtest;
namespace gen = magellano::generate;
namespace fs = std::filesystem;

namespace {

const magellano::nn::Model& tiny_model() {
  static const auto model = [] {
    const auto cfg = magellano::train::load_config(project_file("configs/tiny.json").string());
    return std::make_unique<magellano::nn::Model>(test_ctx(), magellano::train::model_spec(cfg.model), 77);
  }();
  return *model;
}

std::vector<int32_t> prompt_of(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> ids(n);
  for (auto& id : ids) id = int32_t(rng() % 8192);
  return ids;
}

gen::GenerationConfig config(int64_t n, float t = 0.0f, int64_t k = 0, float p = 1.0f, uint64_t seed = 0) {
  gen::GenerationConfig c;
  c.max_new_tokens = n;
  c.sampling.temperature = t, c.sampling.top_k = k, c.sampling.top_p = p, c.sampling.seed = seed;
  return c;
}

std::vector<int32_t> run1(const std::vector<int32_t>& prompt, const gen::GenerationConfig& c) {
  return gen::generate(tiny_model(), {prompt}, c)[0].ids;
}

// A token's "bytes" for the stop-string tests: two letters per id.
std::string letters(int32_t id) { return {char('a' + id % 26), char('a' + (id / 26) % 26)}; }

}  // namespace

TEST(Generate, GreedyIsTheArgmaxOfTheParallelForwardAtEveryPosition) {
  const auto& m = tiny_model();
  const int64_t V = m.spec().vocab_size;
  int compared = 0, skipped = 0;
  for (int64_t len : {1, 9}) {
    const auto prompt = prompt_of(len, 100 + len);
    const auto c = gen::generate(m, {prompt}, config(20))[0];
    ASSERT_EQ(c.ids.size(), 20u);
    EXPECT_EQ(c.finish, gen::FinishReason::length);
    std::vector<int32_t> all = prompt;
    all.insert(all.end(), c.ids.begin(), c.ids.end());
    const int64_t L = int64_t(all.size()) - 1;  // the last id predicts nothing we have
    magellano::autograd::NoGradScope no_grad;
    const auto logits =
        m.forward(upload_i32(Shape{1, L}, std::vector<int32_t>(all.begin(), all.begin() + L))).logits.to_host();
    for (int64_t t = len - 1; t < L; ++t) {
      const float* row = logits.data() + t * V;
      const int64_t arg = std::max_element(row, row + V) - row;
      float second = -INFINITY;
      for (int64_t c2 = 0; c2 < V; ++c2)
        if (c2 != arg) second = std::max(second, row[c2]);
      if (row[arg] - second < 1e-4f) {
        ++skipped;
        continue;
      }
      ++compared;
      EXPECT_EQ(all[t + 1], arg) << "prompt length " << len << ", position " << t;
    }
  }
  EXPECT_LE(skipped, 2);
  EXPECT_GE(compared, 38);
}

TEST(Generate, PrefillIsTheParallelForwardsLastPosition) {
  const auto& m = tiny_model();
  const int64_t B = 2, L = 11, V = m.spec().vocab_size;
  std::vector<int32_t> ids = prompt_of(L, 900), second = prompt_of(L, 901);
  ids.insert(ids.end(), second.begin(), second.end());
  magellano::autograd::NoGradScope no_grad;
  magellano::nn::DecodeState full_state, pre_state;
  const auto full = m.forward(upload_i32(Shape{B, L}, ids), &full_state).logits.to_host();  // (B, L, V)
  const auto last = m.prefill(upload_i32(Shape{B, L}, ids), pre_state).to_host();            // (B, V)
  Vec want;
  for (int64_t b = 0; b < B; ++b) want.insert(want.end(), full.begin() + (b * L + L - 1) * V, full.begin() + (b * L + L) * V);
  // The same kernels on the same rows, except the LM head's GEMM shape: (B, D) vs (B*L, D).
  expect_close(last, want, 1e-5, 1e-6, "prefill logits");
  for (size_t i = 0; i < full_state.mamba.size(); ++i) {
    if (!full_state.mamba[i].ssm.defined()) continue;
    EXPECT_EQ(pre_state.mamba[i].ssm.to_host(), full_state.mamba[i].ssm.to_host()) << "layer " << i;
    EXPECT_EQ(pre_state.mamba[i].conv.to_host(), full_state.mamba[i].conv.to_host()) << "layer " << i;
  }
}

TEST(Generate, SameSeedSameIdsDifferentSeedsDiffer) {
  const auto prompt = prompt_of(5, 200);
  const auto a = run1(prompt, config(16, 1.0f, 0, 1.0f, 42));
  EXPECT_EQ(a, run1(prompt, config(16, 1.0f, 0, 1.0f, 42)));
  EXPECT_NE(a, run1(prompt, config(16, 1.0f, 0, 1.0f, 43)));
}

TEST(Generate, TopKOneIsGreedy) {
  const auto prompt = prompt_of(6, 300);
  EXPECT_EQ(run1(prompt, config(16, 1.0f, 1, 1.0f, 9)), run1(prompt, config(16)));
}

TEST(Generate, TopPAtItsEdges) {
  const auto prompt = prompt_of(4, 400);
  // p -> 0 keeps only the most likely token: greedy.
  EXPECT_EQ(run1(prompt, config(16, 1.0f, 0, 1e-6f, 5)), run1(prompt, config(16)));
  // p = 1 is plain sampling: the same ids as with the filter off another way (k = V) and as
  // with p a hair below 1 (which drops at most 1.2e-7 of the mass).
  const auto plain = run1(prompt, config(16, 1.0f, 0, 1.0f, 5));
  EXPECT_EQ(plain, run1(prompt, config(16, 1.0f, 8192, 1.0f, 5)));
  EXPECT_EQ(plain, run1(prompt, config(16, 1.0f, 0, 0.99999994f, 5)));
  EXPECT_NE(plain, run1(prompt, config(16)));  // and sampling is not greedy here
}

TEST(Generate, BatchOfDifferentLengthsGivesEachPromptsOwnIds) {
  const std::vector<std::vector<int32_t>> prompts = {prompt_of(13, 501), prompt_of(1, 502), prompt_of(30, 503),
                                                     prompt_of(4, 504)};
  const auto batch = gen::generate(tiny_model(), prompts, config(12));
  ASSERT_EQ(batch.size(), prompts.size());
  for (size_t b = 0; b < prompts.size(); ++b) {
    EXPECT_EQ(batch[b].prompt_ids, prompts[b]);
    EXPECT_EQ(batch[b].ids, run1(prompts[b], config(12))) << "prompt " << b;
  }
}

TEST(Generate, EndOfTextEndsARowAndOnlyThatRow) {
  const std::vector<std::vector<int32_t>> prompts = {prompt_of(3, 601), prompt_of(8, 602)};
  const auto free_run = gen::generate(tiny_model(), prompts, config(10));
  // Make row 0's 4th token the end-of-text id; unless row 1 produces it too, it runs on.
  auto c = config(10);
  c.eos_ids = {free_run[0].ids[3]};
  const auto r = gen::generate(tiny_model(), prompts, c);
  const auto first = std::find(free_run[0].ids.begin(), free_run[0].ids.end(), c.eos_ids[0]) - free_run[0].ids.begin();
  EXPECT_EQ(r[0].finish, gen::FinishReason::eos);
  EXPECT_EQ(r[0].ids, std::vector<int32_t>(free_run[0].ids.begin(), free_run[0].ids.begin() + first + 1));
  const auto in1 = std::find(free_run[1].ids.begin(), free_run[1].ids.end(), c.eos_ids[0]);
  if (in1 == free_run[1].ids.end()) {
    EXPECT_EQ(r[1].ids, free_run[1].ids);
    EXPECT_EQ(r[1].finish, gen::FinishReason::length);
  }
}

TEST(Generate, StopStringAcrossTokensCutsTheTextAndStreamsOnlyWhatIsFinal) {
  const auto prompt = prompt_of(5, 700);
  const auto free_run = gen::generate(tiny_model(), {prompt}, config(12), letters)[0];
  ASSERT_EQ(free_run.text.size(), 24u);
  // A stop string spanning tokens 3 to 5 (it starts inside token 3 and ends inside token 5).
  auto c = config(12);
  c.stop = {free_run.text.substr(7, 4)};
  const size_t cut = free_run.text.find(c.stop[0]);
  std::string streamed;
  gen::GenerationCallbacks cb;
  cb.on_text = [&](size_t row, std::string_view s) {
    EXPECT_EQ(row, 0u);
    streamed += s;
  };
  int finished = 0;
  cb.on_finish = [&](size_t, const gen::Completion&) { ++finished; };
  const auto r = gen::generate(tiny_model(), {prompt}, c, letters, cb)[0];
  EXPECT_EQ(r.finish, gen::FinishReason::stop);
  EXPECT_EQ(r.text, free_run.text.substr(0, cut));
  EXPECT_EQ(streamed, r.text);
  EXPECT_EQ(finished, 1);
  // ids run up to the token that completed the stop string.
  const size_t end_token = (cut + c.stop[0].size() + 1) / 2;
  EXPECT_EQ(r.ids, std::vector<int32_t>(free_run.ids.begin(), free_run.ids.begin() + end_token));
  EXPECT_THROW(gen::generate(tiny_model(), {prompt}, c), magellano::Error);  // stop strings need bytes
}

TEST(Generate, RepetitionPenaltyKeepsGreedyFromRepeating) {
  const auto prompt = prompt_of(6, 800);
  auto c = config(24);
  c.sampling.repetition_penalty = 1e4f;  // a seen token's logit moves far below every other
  const auto ids = run1(prompt, c);
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), ids.begin(), ids.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end()) << "an id repeated";
}

TEST(Generate, BadInputIsAnError) {
  EXPECT_THROW(gen::generate(tiny_model(), {}, config(4)), magellano::Error);
  EXPECT_THROW(gen::generate(tiny_model(), {{}}, config(4)), magellano::Error);
  EXPECT_THROW(gen::generate(tiny_model(), {{1, 8192}}, config(4)), magellano::Error);
  EXPECT_THROW(gen::generate(tiny_model(), {{1}}, config(4, -1.0f)), magellano::Error);
  EXPECT_THROW(gen::generate(tiny_model(), {{1}}, config(4, 1.0f, -2)), magellano::Error);
  EXPECT_THROW(gen::generate(tiny_model(), {{1}}, config(4, 1.0f, 0, 1.5f)), magellano::Error);
  EXPECT_TRUE(gen::generate(tiny_model(), {{1}}, config(0))[0].ids.empty());
}
