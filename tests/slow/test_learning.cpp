// Proof of learning: a small Mamba/MoE model trained on tinyshakespeare (GPT-2 tokens from
// ../shared/data) reaches a validation loss well below the unigram entropy of the data within
// a fixed number of steps.
//
// The data: tinyshakespeare.gpt2.u16, the first 90% of tokens for training, the last 10% for
// validation. Its ~11.7k distinct GPT-2 ids are renumbered 0..V-1 (a bijection: entropies and
// losses are unchanged) so the LM head costs a quarter of the full 50,257-way one on 2 cores.
// The bar: validation cross-entropy below the training split's unigram entropy minus 0.75 nats
// (the unigram entropy is 6.32 nats; measured, the model reaches 5.07 after 300 steps of
// 4 x 128 tokens). The same run with fp16 parameters (train.param_dtype, stochastic rounding)
// must clear the same bar and end within 0.05 nats of the fp32 run; so must the model with
// Mamba2 blocks ("SSE"; measured 5.08 after the same 300 steps).
// Blank infilling: the bar (a hybrid trained with blank_infilling fills single-word blanks
// better than chance and than the same model trained causally) is NOT met yet; that comparison is
// a disabled test here, run by scripts/infill_learning.sh (the metric and measured numbers are at it).
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "magellano/autograd/tape.hpp"
#include "magellano/data/blank_infilling.hpp"
#include "magellano/data/token_file.hpp"
#include "magellano/data/tokenizer.hpp"
#include "magellano/train/checkpoint.hpp"
#include "magellano/train/trainer.hpp"
#include "harness.hpp"
#include "project_files.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
namespace train = magellano::train;

namespace {

// tinyshakespeare's GPT-2 ids renumbered 0..V-1, split 90 / 10 into token files in a folder of
// the test's, and the training split's unigram entropy.
struct Shakespeare {
  bool found = false;
  uint64_t V = 0;
  double unigram = 0;
  std::vector<int32_t> gpt2_id;    // (V) the GPT-2 id of each renumbered id
  std::vector<uint32_t> val;       // the validation split, renumbered
  std::vector<double> frequency;   // (V) unigram frequencies of the training split, add-one smoothed
  mgtest::TempDir tmp;

  Shakespeare() {
    const fs::path src = mgtest::shared_data() / "tokenizer_tests" / "tinyshakespeare.gpt2.u16";
    if (!fs::exists(src)) return;
    found = true;
    const std::vector<int32_t> ids = magellano::data::TokenFile::open(src).read_all();
    std::map<int32_t, uint32_t> compact;
    for (int32_t id : ids) compact.emplace(id, 0);
    uint32_t next = 0;
    for (auto& [id, c] : compact) c = next++, gpt2_id.push_back(id);
    V = compact.size();
    std::vector<uint32_t> mapped(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) mapped[i] = compact[ids[i]];
    const size_t cut = mapped.size() * 9 / 10;
    const std::vector<uint32_t> tr(mapped.begin(), mapped.begin() + cut), va(mapped.begin() + cut, mapped.end());
    std::vector<double> counts(V, 0.0);
    for (uint32_t t : tr) counts[t] += 1;
    for (double c : counts)
      if (c > 0) unigram -= c / tr.size() * std::log(c / tr.size());
    for (double c : counts) frequency.push_back((c + 1) / static_cast<double>(tr.size() + V));  // add-one: every id > 0
    val = va;
    magellano::data::write_token_file(tmp.path() / "train.tok", V, tr);
    magellano::data::write_token_file(tmp.path() / "val.tok", V, va);
  }

  // 300 steps of 4 x 128 tokens of a width-96 model with `layers`; the final validation loss.
  // changes: merged into the config (e.g. the objective). The run's folder is run_dir(layers, param_dtype, tag).
  double train(const std::string& layers, const std::string& param_dtype, const nlohmann::json& mamba2 = {},
               const nlohmann::json& changes = nlohmann::json::object(), const std::string& tag = "") const {
    nlohmann::json model = {{"vocab_size", V}, {"dim", 96}, {"layers", layers},
                            {"moe", {{"experts", 4}, {"top_k", 2}, {"hidden", 192}}}};
    if (!mamba2.is_null()) model["mamba2"] = mamba2;
    const fs::path& dir = tmp.path();
    nlohmann::json j{
        {"model", model},
        {"data", {{"train", (dir / "train.tok").string()}, {"val", (dir / "val.tok").string()}}},
        {"train", {{"steps", 300}, {"batch_size", 4}, {"seq_len", 128}, {"lr", 3e-3}, {"min_lr", 3e-4},
                   {"warmup_steps", 20}, {"log_every", 50}, {"seed", 1}, {"param_dtype", param_dtype},
                   {"loss_scaling", param_dtype == "fp16"}}},
        {"eval", {{"every", 0}, {"batches", 16}}},
        {"checkpoint", {{"dir", run_dir(layers, param_dtype, tag).string()}}}};
    j.merge_patch(changes);
    const auto cfg = train::Config::from_json(j);
    train::TrainOptions opt;
    opt.out = &std::cout;
    const auto s = train::train(cfg, mgtest::test_ctx(), opt);
    EXPECT_TRUE(s.val.has_value());
    std::cout << layers << tag << ", " << param_dtype << " parameters: vocabulary " << V << ", unigram entropy " << unigram
              << " nats; validation loss after " << s.steps << " steps: " << (s.val ? s.val->loss : NAN)
              << " (" << s.tokens_per_s << " tokens/s)\n";
    return s.val ? s.val->loss : INFINITY;
  }

  fs::path run_dir(const std::string& layers, const std::string& param_dtype, const std::string& tag) const {
    return tmp.path() / ("run-" + layers + "-" + param_dtype + tag);
  }
};

}  // namespace

TEST(Learning, TinyShakespeareBeatsTheUnigramEntropyWithFp32AndFp16Parameters) {
  const Shakespeare data;
  if (!data.found) GTEST_SKIP() << "shared test data not found under " << mgtest::shared_data() << "; skipping";
  const double fp32 = data.train("MME", "fp32"), fp16 = data.train("MME", "fp16");
  EXPECT_LT(fp32, data.unigram - 0.75);
  EXPECT_LT(fp16, data.unigram - 0.75);
  EXPECT_LT(std::fabs(fp16 - fp32), 0.05);
}

// The same run with Mamba2 blocks in place of the Mamba blocks (4 heads of 48, state 32) clears
// the same bar.
TEST(Learning, TinyShakespeareWithMamba2BlocksBeatsTheUnigramEntropy) {
  const Shakespeare data;
  if (!data.found) GTEST_SKIP() << "shared test data not found under " << mgtest::shared_data() << "; skipping";
  EXPECT_LT(data.train("SSE", "fp32", {{"head_dim", 48}, {"d_state", 32}}), data.unigram - 0.75);
}

namespace {

// A single-word blank: a validation window of kWindow tokens whose token `at` is a whole word (GPT-2
// bytes: a space and two or more ASCII letters; the next token starts with a space or newline or
// is punctuation, so the word is exactly that one token).
constexpr int64_t kWindow = 64;
struct Blank {
  std::vector<int32_t> window;  // (kWindow) renumbered ids
  int64_t at = 0;               // the blank's position, in [32, 56)
};

std::vector<Blank> single_word_blanks(const Shakespeare& data, size_t count) {
  const auto gpt2 = magellano::data::Tokenizer::load(mgtest::shared_data() / "gpt2");
  auto bytes = [&](uint32_t renumbered) { return gpt2.token_bytes(static_cast<uint32_t>(data.gpt2_id[renumbered])); };
  auto is_word = [](const std::string& b) {
    return b.size() >= 3 && b[0] == ' ' && std::all_of(b.begin() + 1, b.end(), [](char c) { return std::isalpha(static_cast<unsigned char>(c)); });
  };
  std::vector<Blank> out;
  for (size_t w = 0; (w + 1) * kWindow <= data.val.size() && out.size() < count; ++w) {
    const uint32_t* win = data.val.data() + w * kWindow;
    for (int64_t t = 32; t < 56; ++t) {
      const std::string next = bytes(win[t + 1]);
      if (!is_word(bytes(win[t])) || next.empty() || std::isalpha(static_cast<unsigned char>(next[0]))) continue;
      out.push_back({std::vector<int32_t>(win, win + kWindow), t});
      break;
    }
  }
  return out;
}

struct FillScore {
  double log_likelihood = 0;  // mean ln p(true word), nats
  double exact = 0;           // fraction of blanks whose argmax is the true word
};

// infill: each blank as part A (the window, the word replaced by [MASK], the prefix) + [START]; the
// score is the [START] position's prediction. Causal: the window's own forward, read at the
// position before the word (left context only: a causal model cannot use the right).
FillScore score_blanks(const magellano::nn::Model& model, const std::vector<Blank>& blanks, bool infill) {
  using magellano::Shape;
  using magellano::Tensor;
  magellano::autograd::NoGradScope no_grad;
  const int64_t V = model.spec().vocab_size;
  const auto tokens = magellano::data::infill_tokens(V);
  const int64_t L = infill ? kWindow + 1 : kWindow, B = 16;
  FillScore s;
  for (size_t b0 = 0; b0 < blanks.size(); b0 += B) {
    const int64_t rows = std::min<int64_t>(B, blanks.size() - b0);
    std::vector<int32_t> x;
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<int32_t> w = blanks[b0 + r].window;
      if (infill) w[blanks[b0 + r].at] = tokens.mask, w.push_back(tokens.start);
      x.insert(x.end(), w.begin(), w.end());
    }
    magellano::Context& ctx = mgtest::test_ctx();
    const Tensor prefix = infill ? Tensor::from_host_i32(ctx, Shape{rows}, std::vector<int32_t>(rows, kWindow)) : Tensor();
    // GLM 2D ids (model.infill_positions glm2d): part A (t, 0), the [START] (its [MASK]'s index, 1).
    Tensor ids;
    if (infill && model.spec().attention.rope_2d) {
      std::vector<int32_t> v(2 * rows * L, 0);
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t t = 0; t < kWindow; ++t) v[2 * (r * L + t)] = static_cast<int32_t>(t);
        v[2 * (r * L + kWindow)] = static_cast<int32_t>(blanks[b0 + r].at), v[2 * (r * L + kWindow) + 1] = 1;
      }
      ids = Tensor::from_host_i32(ctx, Shape{rows, L, 2}, v);
    }
    const auto logits =
        model.forward(Tensor::from_host_i32(ctx, Shape{rows, L}, x), nullptr, 0, prefix, ids).logits.to_host();
    for (int64_t r = 0; r < rows; ++r) {
      const Blank& blank = blanks[b0 + r];
      const float* z = &logits[(r * L + (infill ? kWindow : blank.at - 1)) * V];
      const double top = *std::max_element(z, z + V);
      double sum = 0;
      for (int64_t v = 0; v < V; ++v) sum += std::exp(double(z[v]) - top);
      const int32_t word = blank.window[blank.at];
      s.log_likelihood += double(z[word]) - top - std::log(sum);
      s.exact += (std::max_element(z, z + V) - z) == word;
    }
  }
  s.log_likelihood /= static_cast<double>(blanks.size());
  s.exact /= static_cast<double>(blanks.size());
  return s;
}

}  // namespace

// Blank infilling against causal training on single-word blanks (scripts/infill_learning.sh runs
// it; disabled in CI: its budget, 2 x 2,000 steps of 16 x 128 tokens, takes about 20 s a model on
// an H100 or H200 but over half an hour on 2 CPU cores). Two models of the same size and
// architecture ("MAE": Mamba, attention, MoE; width 96), the same budget: one causal, one trained
// on blank_infilling (spans of Poisson(1) tokens, 15%; part A bidirectional, Mamba too through
// model.bidirectional_prefix) with GLM's 2D positions (model.infill_positions "glm2d").
// Metric: the mean ln p(true word) over single-word blanks of the validation split (one per
// 64-token window, the word at position 32..55), the infilling model reading the whole window with
// the word masked (part A + [START]), the causal one the words before it; also the exact-match
// rate of the argmax. Chance is ln(1 / V); the unigram model (add-one) scores the words' mean ln
// frequency. Measured on an H200 (2026-12-07, benchmarks/README.md "Blank infilling against causal
// training"): infilling -6.10, causal -6.84 (the causal model over-fits at this budget; its best
// over the budgets tried, -6.18 at 1,000 x 8, is still below the infilling model's), unigram -7.37.
// Below about 600 x 16 the infilling model stays at the unigram level (the [START] has not yet
// learned to read its blank's neighbours) while the causal one is at -6.2 to -6.7.
// Knobs: MG_INFILL_BUDGET (both runs' train section, e.g. {"steps": 300, "batch_size": 4}),
// MG_INFILL_TRAIN (the infilling run's train section in place of the default), MG_INFILL_MODEL
// (merged into its model section, e.g. {"infill_positions": "sequential"}), MG_SKIP_CAUSAL=1 (the
// causal score prints as 0).
TEST(Learning, DISABLED_BlankInfillingFillsSingleWordBlanksBetterThanCausal) {
  const Shakespeare data;
  if (!data.found) GTEST_SKIP() << "shared test data not found under " << mgtest::shared_data() << "; skipping";
  const auto blanks = single_word_blanks(data, 256);
  ASSERT_GE(blanks.size(), 200u);
  const nlohmann::json attention = {{"model", {{"attention", {{"heads", 4}}}}}};
  nlohmann::json infill = attention;
  infill["model"]["vocab_size"] = data.V + 3;  // [MASK] [START] [END] after the data's ids
  infill["model"]["bidirectional_prefix"] = true;
  infill["model"]["infill_positions"] = "glm2d";
  infill["train"] = {{"objective", "blank_infilling"}, {"infill_span_lambda", 1}};
  if (const char* e = std::getenv("MG_INFILL_TRAIN")) infill["train"] = nlohmann::json::parse(e);
  if (const char* e = std::getenv("MG_INFILL_MODEL")) infill["model"].merge_patch(nlohmann::json::parse(e));
  nlohmann::json causal_run = attention;  // both runs' budget (steps, batch_size, lr, ...)
  causal_run["train"] = {{"steps", 2000}, {"batch_size", 16}, {"warmup_steps", 100}};
  if (const char* e = std::getenv("MG_INFILL_BUDGET")) causal_run["train"] = nlohmann::json::parse(e);
  infill["train"].merge_patch(causal_run["train"]);
  if (!std::getenv("MG_SKIP_CAUSAL")) data.train("MAE", "fp32", {}, causal_run, "-causal");
  data.train("MAE", "fp32", {}, infill, "-infill");
  auto load = [&](const std::string& tag, int64_t steps) {
    char step[32];
    std::snprintf(step, sizeof step, "step-%08lld", static_cast<long long>(steps));
    return magellano::train::load_model(data.run_dir("MAE", "fp32", tag) / step, mgtest::test_ctx()).model;
  };
  const FillScore causal = std::getenv("MG_SKIP_CAUSAL")
                               ? FillScore{}
                               : score_blanks(*load("-causal", causal_run["train"].value("steps", 300)), blanks, false);
  const FillScore filled = score_blanks(*load("-infill", infill["train"].value("steps", 300)), blanks, true);
  double unigram = 0;
  for (const auto& b : blanks) unigram += std::log(data.frequency[b.window[b.at]]);
  unigram /= static_cast<double>(blanks.size());
  const double chance = -std::log(static_cast<double>(data.V));
  std::cout << blanks.size() << " single-word blanks: mean ln p(word) infilling " << filled.log_likelihood
            << " (exact " << filled.exact << "), causal " << causal.log_likelihood << " (exact " << causal.exact
            << "), unigram " << unigram << ", chance " << chance << "\n";
  EXPECT_GT(filled.log_likelihood, chance + 3.0);
  EXPECT_GT(filled.log_likelihood, unigram);
  if (!std::getenv("MG_SKIP_CAUSAL")) EXPECT_GT(filled.log_likelihood, causal.log_likelihood + 0.2);
}
