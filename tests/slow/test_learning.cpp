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
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "magellano/data/token_file.hpp"
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
  mgtest::TempDir tmp;

  Shakespeare() {
    const fs::path src = mgtest::shared_data() / "tokenizer_tests" / "tinyshakespeare.gpt2.u16";
    if (!fs::exists(src)) return;
    found = true;
    const std::vector<int32_t> ids = magellano::data::TokenFile::open(src).read_all();
    std::map<int32_t, uint32_t> compact;
    for (int32_t id : ids) compact.emplace(id, 0);
    uint32_t next = 0;
    for (auto& [id, c] : compact) c = next++;
    V = compact.size();
    std::vector<uint32_t> mapped(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) mapped[i] = compact[ids[i]];
    const size_t cut = mapped.size() * 9 / 10;
    const std::vector<uint32_t> tr(mapped.begin(), mapped.begin() + cut), va(mapped.begin() + cut, mapped.end());
    std::vector<double> counts(V, 0.0);
    for (uint32_t t : tr) counts[t] += 1;
    for (double c : counts)
      if (c > 0) unigram -= c / tr.size() * std::log(c / tr.size());
    magellano::data::write_token_file(tmp.path() / "train.tok", V, tr);
    magellano::data::write_token_file(tmp.path() / "val.tok", V, va);
  }

  // 300 steps of 4 x 128 tokens of a width-96 model with `layers`; the final validation loss.
  double train(const std::string& layers, const std::string& param_dtype, const nlohmann::json& mamba2 = {}) const {
    nlohmann::json model = {{"vocab_size", V}, {"dim", 96}, {"layers", layers},
                            {"moe", {{"experts", 4}, {"top_k", 2}, {"hidden", 192}}}};
    if (!mamba2.is_null()) model["mamba2"] = mamba2;
    const fs::path& dir = tmp.path();
    const auto cfg = train::Config::from_json(nlohmann::json{
        {"model", model},
        {"data", {{"train", (dir / "train.tok").string()}, {"val", (dir / "val.tok").string()}}},
        {"train", {{"steps", 300}, {"batch_size", 4}, {"seq_len", 128}, {"lr", 3e-3}, {"min_lr", 3e-4},
                   {"warmup_steps", 20}, {"log_every", 50}, {"seed", 1}, {"param_dtype", param_dtype},
                   {"loss_scaling", param_dtype == "fp16"}}},
        {"eval", {{"every", 0}, {"batches", 16}}},
        {"checkpoint", {{"dir", (dir / ("run-" + layers + "-" + param_dtype)).string()}}}});
    train::TrainOptions opt;
    opt.out = &std::cout;
    const auto s = train::train(cfg, mgtest::test_ctx(), opt);
    EXPECT_TRUE(s.val.has_value());
    std::cout << layers << ", " << param_dtype << " parameters: vocabulary " << V << ", unigram entropy " << unigram
              << " nats; validation loss after " << s.steps << " steps: " << (s.val ? s.val->loss : NAN)
              << " (" << s.tokens_per_s << " tokens/s)\n";
    return s.val ? s.val->loss : INFINITY;
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
