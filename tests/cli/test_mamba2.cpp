// A Hugging Face Mamba2ForCausalLM folder (config.json as Python writes it, with a bare
// Infinity; model.safetensors from the float64 reference's weights) with the real processes:
// `eval` gives the reference's loss, `generate` the reference's greedy tokens and stops at the
// config's eos_token_id, `quantize` writes a folder that generates, `train --init-from` starts
// from it; a folder whose tensors disagree with its config fails with one line naming the tensor.
// Tolerances: the loss relative 1e-5 (fp32 logits vs float64, see kernel/test_mamba2_model.cpp);
// greedy tokens compared where the reference's top two logits are more than 1e-3 apart.
#include <algorithm>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "error_text.hpp"
#include "harness.hpp"
#include "hf_mamba2_folder.hpp"
#include "magellano/data/token_file.hpp"
#include "temp_dir.hpp"
#include "train_fixture.hpp"

using namespace mgtest;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kVocab = 64;

ref::Mamba2Model reference_model() {
  ref::Mamba2Dims s{0, 0, 16, 32, 8, 2, 8, 4};  // D 16, 4 heads of 8 in 2 groups, N 8
  s.bias = true;
  return ref::random_mamba2_model(s, kVocab, 2, false, 60);
}

std::vector<int32_t> tokens(size_t n, uint64_t seed) {
  std::vector<int32_t> ids = std::vector<int32_t>(n);
  std::mt19937_64 rng(seed);
  for (auto& id : ids) id = int32_t(rng() % kVocab);
  return ids;
}

nlohmann::json single_json(const std::string& out) {
  return nlohmann::json::parse(out.substr(out.find('{'), out.rfind('}') - out.find('{') + 1));
}

}  // namespace

TEST(Mamba2Cli, HuggingFaceFolderEvaluatesGeneratesQuantizesAndFineTunes) {
  MG_REQUIRE_CLI();
  TempDir d;
  const auto r = reference_model();
  const fs::path hf = d / "mamba2-hf";
  fs::create_directories(hf);
  write_hf_mamba2_folder(r, hf, hf_mamba2_config_text(r, "[0.0, Infinity]"));
  // eval: 2 chunks of 16 tokens, 15 predictions each.
  const auto ids = tokens(32, 1);
  std::vector<uint32_t> u(ids.begin(), ids.end());
  magellano::data::write_token_file(d / "val.tok", kVocab, u);
  auto run = run_on_device({"eval", "--checkpoint", hf.string(), "--tokens", (d / "val.tok").string(), "--seq-len",
                            "16", "--batch", "2", "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.output << run.err;
  std::vector<int32_t> x, y;
  for (int c = 0; c < 2; ++c) {
    x.insert(x.end(), ids.begin() + 16 * c, ids.begin() + 16 * c + 15);
    y.insert(y.end(), ids.begin() + 16 * c + 1, ids.begin() + 16 * c + 16);
  }
  const double want = ref::cross_entropy(ref::mamba2_model_logits(r, x, 2, 15), Vec(y.begin(), y.end()), kVocab, -100)[0];
  EXPECT_NEAR(single_json(run.output)["loss"].get<double>(), want, 1e-5 * want);
  // generate: greedy; every token the reference's argmax after the same prefix, or the eos id (2) ending it.
  run = run_on_device({"generate", "--checkpoint", hf.string(), "--prompt-ids", "7 9 11", "--max-new-tokens", "10",
                       "--temperature", "0", "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.output << run.err;
  const auto gen = single_json(run.output);
  std::vector<int32_t> all = {7, 9, 11};
  for (const auto& id : gen["ids"]) {
    const Vec logits = ref::mamba2_model_logits(r, all, 1, int64_t(all.size()));
    const double* row = logits.data() + (all.size() - 1) * kVocab;
    const int64_t arg = std::max_element(row, row + kVocab) - row;
    std::vector<double> sorted(row, row + kVocab);
    std::sort(sorted.rbegin(), sorted.rend());
    if (sorted[0] - sorted[1] > 1e-3) EXPECT_EQ(id.get<int32_t>(), arg) << "after " << all.size() << " ids";
    all.push_back(id.get<int32_t>());
  }
  EXPECT_EQ(gen["finish_reason"], gen["ids"].back() == 2 ? "eos" : "length");
  // quantize: the config is written back with {"__float__": "Infinity"}, and the folder generates.
  run = run_on_device({"quantize", "--in", hf.string(), "--out", (d / "q").string()});
  ASSERT_EQ(run.exit_code, 0) << run.output << run.err;
  std::ifstream qc(d / "q" / "config.json");
  const std::string qtext((std::istreambuf_iterator<char>(qc)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(has(qtext, "\"__float__\": \"Infinity\"")) << qtext;
  run = run_on_device({"generate", "--checkpoint", (d / "q").string(), "--prompt-ids", "7 9 11", "--max-new-tokens",
                       "4", "--json"});
  EXPECT_EQ(run.exit_code, 0) << run.output << run.err;
  // train --init-from: a config of the same model fine-tunes from the folder's weights.
  magellano::data::write_token_file(d / "train.tok", kVocab, std::vector<uint32_t>(u.begin(), u.end()));
  const nlohmann::json cfg = {
      {"model", {{"vocab_size", kVocab}, {"dim", 16}, {"layers", "SS"}, {"tie_embeddings", false}, {"norm_eps", 1e-5},
                 {"mamba2", {{"head_dim", 8}, {"n_groups", 2}, {"d_state", 8}, {"bias", true}}}}},
      {"data", {{"train", (d / "train.tok").string()}}},
      {"train", {{"steps", 2}, {"batch_size", 1}, {"seq_len", 8}, {"warmup_steps", 1}}},
      {"checkpoint", {{"dir", (d / "run").string()}}}};
  std::ofstream(d / "ft.json") << cfg.dump();
  run = run_on_device({"train", "--config", (d / "ft.json").string(), "--init-from", hf.string()});
  EXPECT_EQ(run.exit_code, 0) << run.output << run.err;
  EXPECT_TRUE(has(run.output, "initialised from " + hf.string())) << run.output;
}

TEST(Mamba2Cli, AFolderThatDisagreesWithItsConfigFailsWithOneLine) {
  MG_REQUIRE_CLI();
  TempDir d;
  auto r = reference_model();
  nlohmann::json j = nlohmann::json::parse(hf_mamba2_config_text(r, "[0.0, {\"__float__\": \"Infinity\"}]"));
  j["conv_kernel"] = 3;  // the tensors have width 4
  write_hf_mamba2_folder(r, d.path(), j.dump());
  const auto run = run_on_device({"generate", "--checkpoint", d.path().string(), "--prompt-ids", "1 2"});
  EXPECT_TRUE(fails_with_one_line(run, 1, "loading 'backbone.layers.0.mixer.conv1d.weight' from " +
                                              (d.path() / "model.safetensors").string() +
                                              ": stored shape [64, 1, 4] differs from the model's [64, 1, 3]"));
}
