// The training loop end to end on the test device: bit-exact resume, checkpoints kept, metrics,
// the NaN stop, evaluation, and Hugging Face Mamba checkpoint directories; a Mamba2 preset's
// model resumes bit-exactly.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "error_text.hpp"
#include "harness.hpp"
#include "project_files.hpp"
#include "temp_dir.hpp"
#include "magellano/data/token_file.hpp"
#include "magellano/io/checkpoint_dir.hpp"
#include "magellano/io/json_file.hpp"
#include "magellano/io/safetensors.hpp"
#include "magellano/io/safetensors_device.hpp"
#include "magellano/optim/adamw.hpp"
#include "magellano/train/checkpoint.hpp"
#include "magellano/train/model_size.hpp"
#include "magellano/train/trainer.hpp"

using namespace mgtest;
namespace fs = std::filesystem;
namespace train = magellano::train;

namespace {

using mgtest::TempDir;

// A token file with learnable structure: a noisy repeating sequence over 64 ids.
fs::path make_tokens(const fs::path& dir, const std::string& name, size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint32_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = rng() % 10 == 0 ? rng() % 64 : (i * 7) % 64;
  const fs::path p = dir / name;
  magellano::data::write_token_file(p, 64, ids);
  return p;
}

train::Config small_config(const fs::path& dir, int64_t steps) {
  nlohmann::json j = {
      {"model", {{"vocab_size", 64}, {"dim", 16}, {"layers", "ME"}, {"d_state", 8},
                 {"moe", {{"experts", 4}, {"top_k", 2}, {"hidden", 32}}}}},
      {"data", {{"train", make_tokens(dir, "train.tok", 20000, 1).string()},
                {"val", make_tokens(dir, "val.tok", 2000, 2).string()}}},
      {"train", {{"steps", steps}, {"batch_size", 2}, {"seq_len", 16}, {"lr", 3e-3}, {"min_lr", 3e-4},
                 {"warmup_steps", 2}, {"log_every", 1}, {"seed", 7}}},
      {"eval", {{"every", 0}, {"batches", 4}}},
      {"checkpoint", {{"dir", (dir / "run").string()}, {"every", 0}, {"keep", 2}}}};
  return train::Config::from_json(j);
}

std::string bytes_of(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<double> losses(const fs::path& metrics) {
  std::vector<double> v;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) v.push_back(j["loss"]);
  }
  return v;
}

// Run B resumes run A (8 steps straight into a/run, checkpoints at 4 and 8) from A's step 4
// with A's saved config, writing into b/run: steps 5-8 must give the same losses, and step 8
// byte-identical weights and moments. Returns the resumed config.
train::Config expect_resume_matches(const fs::path& a, const fs::path& b) {
  const fs::path a4 = a / "run" / "step-00000004", a8 = a / "run" / "step-00000008";
  EXPECT_TRUE(fs::exists(a4) && fs::exists(a8));
  auto resumed = train::Config::from_json(magellano::io::read_json(a4 / "config.json"));
  resumed.checkpoint.dir = (b / "run").string();
  train::TrainOptions o;
  o.resume = a4;
  const auto s = train::train(resumed, test_ctx(), o);
  EXPECT_EQ(s.steps, 8);
  const fs::path b8 = b / "run" / "step-00000008";
  EXPECT_EQ(bytes_of(a8 / "model.safetensors"), bytes_of(b8 / "model.safetensors")) << "weights differ";
  EXPECT_EQ(bytes_of(a8 / "optimizer.safetensors"), bytes_of(b8 / "optimizer.safetensors")) << "moments differ";
  const auto la = losses(a / "run" / "metrics.jsonl"), lb = losses(b / "run" / "metrics.jsonl");
  EXPECT_EQ(la.size(), 8u);
  EXPECT_EQ(lb.size(), 4u);
  for (size_t i = 0; i < 4 && i + 4 < la.size() && i < lb.size(); ++i)
    EXPECT_EQ(la[4 + i], lb[i]) << "loss at step " << 5 + i;
  return resumed;
}

}  // namespace

TEST(Trainer, ResumeIsBitExact) {
  TempDir a, b;
  auto cfg = small_config(a.path(), 8);
  cfg.checkpoint.every = 4;
  train::train(cfg, test_ctx(), {});
  expect_resume_matches(a.path(), b.path());
}

// The Mamba2 preset (tiny_mamba2's model: Mamba2 and MoE blocks) resumes bit for bit too.
TEST(Trainer, Mamba2PresetResumesBitExactly) {
  TempDir a, b;
  auto preset = train::load_config(project_file("configs/tiny_mamba2.json").string());
  auto cfg = small_config(a.path(), 8);
  cfg.model = preset.model;
  cfg.model.vocab_size = 64;
  cfg.checkpoint.every = 4;
  ASSERT_EQ(cfg.model.num_mamba2(), 6);
  train::train(cfg, test_ctx(), {});
  EXPECT_EQ(expect_resume_matches(a.path(), b.path()).model.layers, "(SSSE)x2");
}

// The Mamba-GLM preset (glm_tiny's model: Mamba, attention and MoE blocks), with gradient
// checkpointing over its attention blocks, resumes bit for bit too.
TEST(Trainer, GlmPresetResumesBitExactly) {
  TempDir a, b;
  auto preset = train::load_config(project_file("configs/glm_tiny.json").string());
  auto cfg = small_config(a.path(), 8);
  cfg.model = preset.model;
  cfg.model.vocab_size = 64;
  cfg.checkpoint.every = 4;
  cfg.train.gradient_checkpointing = 2;
  ASSERT_EQ(cfg.model.num_attention(), 4);
  train::train(cfg, test_ctx(), {});
  EXPECT_EQ(expect_resume_matches(a.path(), b.path()).model.layers, "(MMAE)x4");
}

// Prefix-LM (sampled prefixes, suffix-only loss) on the Mamba-GLM preset resumes bit for bit: the
// prefixes are drawn from the batcher's state. Its validation loss counts suffix tokens only, and
// differs from the same model's causal one.
TEST(Trainer, PrefixLmResumesBitExactlyAndEvaluatesInPrefixMode) {
  TempDir a, b;
  auto preset = train::load_config(project_file("configs/glm_tiny.json").string());
  auto cfg = small_config(a.path(), 8);
  cfg.model = preset.model;
  cfg.model.vocab_size = 64;
  cfg.checkpoint.every = 4;
  cfg.train.objective = {.objective = magellano::data::Objective::prefix_lm, .min_fraction = 0.3, .max_fraction = 0.7};
  const auto s = train::train(cfg, test_ctx(), {});
  const auto resumed = expect_resume_matches(a.path(), b.path());
  EXPECT_EQ(resumed.train.objective, cfg.train.objective);
  ASSERT_TRUE(s.val.has_value());
  const auto model = train::load_model(a.path() / "run" / "step-00000008", test_ctx()).model;
  const std::vector<int32_t> tokens = magellano::data::TokenFile::open(*cfg.data.val, 64).read_all();
  const auto causal = train::evaluate(*model, tokens, 16, 2, 8);
  const auto prefix = train::evaluate(*model, tokens, 16, 2, 8, cfg.train.objective);
  EXPECT_EQ(causal.tokens, 8 * 15);
  EXPECT_LT(prefix.tokens, causal.tokens * 0.8);  // prefixes of 30-70% of 16 leave ~50% counted
  EXPECT_GT(prefix.tokens, causal.tokens * 0.2);
  EXPECT_NE(prefix.loss, causal.loss);
}

// Blank infilling mixed with causal windows (spans from the batcher's state) on the Mamba-GLM
// preset resumes bit for bit; evaluation in that mode counts part B's targets only (span tokens
// and one [END] per span: about 15% of the source plus the spans). The special tokens are the
// model's top three ids, so a token file whose vocabulary reaches them is refused.
TEST(Trainer, BlankInfillingResumesBitExactlyAndEvaluatesInItsMode) {
  TempDir a, b, c;
  auto preset = train::load_config(project_file("configs/glm_tiny.json").string());
  auto cfg = small_config(a.path(), 8);
  cfg.model = preset.model;
  cfg.model.vocab_size = 67;  // the token files' 64 ids + [MASK] [START] [END]
  cfg.checkpoint.every = 4;
  cfg.train.objective.mix = {1, 0, 3};
  const auto s = train::train(cfg, test_ctx(), {});
  const auto resumed = expect_resume_matches(a.path(), b.path());
  EXPECT_EQ(resumed.train.objective, cfg.train.objective);
  ASSERT_TRUE(s.val.has_value());
  EXPECT_TRUE(std::isfinite(s.val->loss));
  const auto model = train::load_model(a.path() / "run" / "step-00000008", test_ctx()).model;
  const std::vector<int32_t> tokens = magellano::data::TokenFile::open(*cfg.data.val, 64).read_all();
  const magellano::data::ObjectiveConfig infill{.objective = magellano::data::Objective::blank_infilling};
  const auto causal = train::evaluate(*model, tokens, 17, 2, 8);
  const auto blanks = train::evaluate(*model, tokens, 17, 2, 8, infill);
  EXPECT_EQ(causal.tokens, 8 * 16);
  // 16 inputs: 1 span of 2 (S = 14, round(2.1) = 2) or 2 spans (S = 12): 3 to 4 targets per chunk.
  EXPECT_GE(blanks.tokens, 8 * 3);
  EXPECT_LE(blanks.tokens, 8 * 4);
  EXPECT_NE(blanks.loss, causal.loss);
  auto tight = small_config(c.path(), 2);
  tight.model = preset.model;
  tight.model.vocab_size = 65;
  tight.train.objective.objective = magellano::data::Objective::blank_infilling;
  mgtest::expect_error([&] { train::train(tight, test_ctx(), {}); }, "which reaches blank infilling's [MASK] 62");
  EXPECT_FALSE(fs::exists(c.path() / "run"));  // refused before the run's folder is claimed
}

// Evaluating under blank infilling uses the training windows' shape: chunk c is the seq_len + 1
// tokens from c · seq_len (data::Batcher's window c), i.e. seq_len inputs, transformed by
// make_row with seed 0 and draw c. The reference builds those rows itself and takes the model's
// loss over them. Before the fix, eval chunks held seq_len tokens (seq_len - 1 inputs), a layout
// the model never trained on (a synthetic task's loss went from 2.36 to 4.57 with it).
TEST(Trainer, BlankInfillingEvaluatesTrainingShapedWindows) {
  TempDir a;
  auto preset = train::load_config(project_file("configs/glm_tiny.json").string());
  auto cfg = small_config(a.path(), 2);
  cfg.model = preset.model;
  cfg.model.vocab_size = 67;
  train::train(cfg, test_ctx(), {});
  const auto model = train::load_model(a.path() / "run" / "step-00000002", test_ctx()).model;
  const std::vector<int32_t> tokens = magellano::data::TokenFile::open(*cfg.data.val, 64).read_all();
  const magellano::data::ObjectiveConfig infill{.objective = magellano::data::Objective::blank_infilling,
                                                .infill = {.mode = magellano::data::InfillMode::single}};
  const int64_t L = 16, chunks = 5;
  ASSERT_GE(tokens.size(), static_cast<size_t>(chunks * L + 1));
  double sum = 0;
  int64_t counted = 0;
  for (int64_t c = 0; c < chunks; ++c) {
    std::vector<int32_t> x(L), y(L);
    const int32_t p = magellano::data::make_row(infill, 67, std::span<const int32_t>(tokens).subspan(c * L, L + 1), 0,
                                                static_cast<uint64_t>(c), x, y);
    const auto n = std::count_if(y.begin(), y.end(), [](int32_t t) { return t != magellano::data::kIgnoreTarget; });
    magellano::autograd::NoGradScope no_grad;
    const auto out = model->loss(magellano::Tensor::from_host_i32(test_ctx(), magellano::Shape{1, L}, x),
                                 magellano::Tensor::from_host_i32(test_ctx(), magellano::Shape{1, L}, y),
                                 magellano::Tensor::from_host_i32(test_ctx(), magellano::Shape{1}, {p}));
    sum += static_cast<double>(out.ce.item()) * static_cast<double>(n);
    counted += n;
  }
  const auto r = train::evaluate(*model, tokens, L, 2, chunks, infill);
  EXPECT_EQ(r.tokens, counted);
  // Batched rows of 2 against single rows: the same positions, other reduction orders (fp32).
  EXPECT_NEAR(r.loss, sum / static_cast<double>(counted), 1e-4);
  // A causal evaluation keeps chunks of seq_len tokens (seq_len - 1 predictions each).
  EXPECT_EQ(train::evaluate(*model, tokens, L, 2, chunks).tokens, chunks * (L - 1));
}

// GLM's 2D positions (model.infill_positions glm2d): a mixed run resumes bit-exactly; evaluation
// gives each chunk its 2D ids (make_row's): the loss equals the reference rows' loss with those ids,
// and differs from the same rows read with sequential ids (the ids really reach the attention).
// Refused without a rotary attention layer.
TEST(Trainer, Glm2dPositionsTrainResumeAndEvaluateWithTheirIds) {
  TempDir a, b, c;
  auto preset = train::load_config(project_file("configs/glm_tiny.json").string());
  auto cfg = small_config(a.path(), 8);
  cfg.model = preset.model;
  cfg.model.vocab_size = 67;
  cfg.model.infill_positions = magellano::data::InfillPositions::glm2d;
  cfg.checkpoint.every = 4;
  cfg.train.objective.mix = {1, 0, 3};
  train::train(cfg, test_ctx(), {});
  const auto resumed = expect_resume_matches(a.path(), b.path());
  EXPECT_EQ(resumed.model.infill_positions, magellano::data::InfillPositions::glm2d);
  const auto model = train::load_model(a.path() / "run" / "step-00000008", test_ctx()).model;
  ASSERT_TRUE(model->spec().attention.rope_2d);
  const std::vector<int32_t> tokens = magellano::data::TokenFile::open(*cfg.data.val, 64).read_all();
  const magellano::data::ObjectiveConfig infill{.objective = magellano::data::Objective::blank_infilling};
  const int64_t L = 16, chunks = 4;
  double with = 0, without = 0;
  int64_t counted = 0;
  magellano::autograd::NoGradScope no_grad;
  for (int64_t k = 0; k < chunks; ++k) {
    std::vector<int32_t> x(L), y(L), ids(2 * L);
    const int32_t p = magellano::data::make_row(infill, 67, std::span<const int32_t>(tokens).subspan(k * L, L + 1), 0,
                                                static_cast<uint64_t>(k), x, y, ids);
    const auto n = std::count_if(y.begin(), y.end(), [](int32_t t) { return t != magellano::data::kIgnoreTarget; });
    auto ce = [&](const magellano::Tensor& pos) {
      return static_cast<double>(model->loss(upload_i32(magellano::Shape{1, L}, x), upload_i32(magellano::Shape{1, L}, y),
                                             upload_i32(magellano::Shape{1}, {p}), pos).ce.item()) * double(n);
    };
    with += ce(upload_i32(magellano::Shape{1, L, 2}, ids));
    without += ce(magellano::Tensor());
    counted += n;
  }
  const auto r = train::evaluate(*model, tokens, L, 2, chunks, infill);
  EXPECT_EQ(r.tokens, counted);
  EXPECT_NEAR(r.loss, with / double(counted), 1e-4);
  EXPECT_GT(std::fabs(r.loss - without / double(counted)), 1e-3);
  auto nope = small_config(c.path(), 2);
  nope.model.infill_positions = magellano::data::InfillPositions::glm2d;
  mgtest::expect_error([&] { train::Config::from_json(nope.to_json()); },
                       "'model.infill_positions' \"glm2d\" gives GLM's 2D ids to rotary attention ('A') layers");
}

TEST(Trainer, FineTuningStartsFromACheckpointsWeights) {
  TempDir a, b, c;
  train::train(small_config(a.path(), 3), test_ctx(), {});
  // Steps at learning rate 0 (no decay either) keep the loaded weights exactly.
  auto cfg = small_config(b.path(), 2);
  cfg.train.lr = 0, cfg.train.min_lr = 0, cfg.train.warmup_steps = 0;
  train::TrainOptions o;
  o.init_from = a.path() / "run" / "step-00000003";
  train::train(cfg, test_ctx(), o);
  EXPECT_EQ(bytes_of(a.path() / "run" / "step-00000003" / "model.safetensors"),
            bytes_of(b.path() / "run" / "step-00000002" / "model.safetensors"));
  // Weights of another model are refused with the missing name (in a folder of its own: b/run
  // belongs to the run above).
  auto other = small_config(c.path(), 2);
  other.model.pattern = train::parse_layer_pattern("MM");
  other.model.layers = "MM";
  try {
    train::train(other, test_ctx(), o);
    FAIL();
  } catch (const magellano::Error& e) {
    EXPECT_NE(std::string(e.what()).find("has no tensor 'backbone.layers.1.mixer"), std::string::npos) << e.what();
  }
}

TEST(Trainer, CheckpointsMetricsAndEvaluation) {
  TempDir d;
  auto cfg = small_config(d.path(), 6);
  cfg.checkpoint.every = 2;
  cfg.eval.every = 3;
  const auto s = train::train(cfg, test_ctx(), {});
  // keep = 2: the newest two remain, written atomically (no temp folders left), beside the
  // run's run.json and metrics.
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(d.path() / "run")) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"metrics.jsonl", "run.json", "step-00000004", "step-00000006"}));
  for (const char* f : {"config.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json"})
    EXPECT_TRUE(fs::exists(d.path() / "run" / "step-00000006" / f)) << f;
  // Metrics: one line per step plus the evaluations, with the documented keys.
  std::ifstream in(d.path() / "run" / "metrics.jsonl");
  int train_lines = 0, eval_lines = 0;
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("val_loss")) {
      ++eval_lines;
      EXPECT_NEAR(j["val_perplexity"].get<double>(), std::exp(j["val_loss"].get<double>()), 1e-6 * j["val_perplexity"].get<double>());
      continue;
    }
    ++train_lines;
    for (const char* k : {"step", "loss", "aux_loss", "lr", "grad_norm", "tokens_per_s", "expert_load", "peak_device_bytes"})
      EXPECT_TRUE(j.contains(k)) << k;
    EXPECT_EQ(j["expert_load"].size(), 1u);     // one MoE block
    EXPECT_EQ(j["expert_load"][0].size(), 4u);  // four experts, fractions summing to 1
  }
  EXPECT_EQ(train_lines, 6);
  EXPECT_EQ(eval_lines, 2);  // at step 3 and at the end
  // The final evaluation equals evaluating the saved checkpoint afresh.
  ASSERT_TRUE(s.val.has_value());
  auto loaded = train::load_model(d.path() / "run" / "step-00000006", test_ctx());
  const auto ids = magellano::data::TokenFile::open(*cfg.data.val, 64).read_all();
  const auto r = train::evaluate(*loaded.model, ids, cfg.train.seq_len, cfg.train.batch_size,
                                 cfg.eval.batches * cfg.train.batch_size);
  EXPECT_EQ(r.loss, s.val->loss);
  EXPECT_EQ(r.tokens, s.val->tokens);
}

TEST(Trainer, TheLossFallsOnStructuredData) {
  TempDir d;
  auto cfg = small_config(d.path(), 150);
  cfg.train.log_every = 25;
  cfg.train.lr = 1e-2, cfg.train.min_lr = 1e-3, cfg.train.warmup_steps = 10;
  cfg.train.batch_size = 4;
  const auto s = train::train(cfg, test_ctx(), {});
  const auto l = losses(d.path() / "run" / "metrics.jsonl");
  ASSERT_EQ(l.size(), 6u);
  std::cout << "training loss " << l.front() << " -> " << l.back() << ", validation " << s.val->loss << "\n";
  EXPECT_LT(l.back(), 0.6 * l.front()) << "a 90%-predictable sequence should be learned";
  ASSERT_TRUE(s.val.has_value());
  EXPECT_LT(s.val->loss, std::log(64.0) * 0.6);
}

TEST(Trainer, NaNStopsWithAClearMessage) {
  TempDir d;
  auto cfg = small_config(d.path(), 20);
  cfg.train.lr = 1e12, cfg.train.min_lr = 1e12, cfg.train.grad_clip = 0, cfg.train.warmup_steps = 0;
  try {
    train::train(cfg, test_ctx(), {});
    FAIL() << "training with lr 1e12 should have diverged";
  } catch (const magellano::Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("training stopped at step"), std::string::npos) << m;
    EXPECT_NE(m.find("Lower train.lr"), std::string::npos) << m;
  }
}

TEST(Trainer, MissingOrForeignDataIsAClearError) {
  TempDir d;
  auto cfg = small_config(d.path(), 2);
  cfg.data.train = (d.path() / "nope.tok").string();
  EXPECT_THROW(train::train(cfg, test_ctx(), {}), magellano::Error);
  cfg = small_config(d.path(), 2);
  cfg.model.vocab_size = 32;  // the token file has ids up to 63
  cfg.model.pattern = train::parse_layer_pattern("M");
  EXPECT_THROW(train::train(cfg, test_ctx(), {}), magellano::Error);
}

TEST(Checkpoint, HuggingFaceMambaDirectoriesLoad) {
  // A directory laid out as MambaForCausalLM.save_pretrained writes it: config.json with
  // model_type "mamba" and model.safetensors with the backbone's names (lm_head tied, absent).
  TempDir d;
  magellano::nn::ModelSpec spec;
  spec.vocab_size = 50, spec.dim = 24, spec.layers = "MM";
  spec.mamba.d_state = 16;
  magellano::nn::Model original(test_ctx(), spec, 11);
  std::vector<std::pair<std::string, magellano::io::StTensor>> weights;
  for (const auto& p : original.parameters()) weights.emplace_back(p.name, magellano::io::to_st(p.tensor));
  magellano::io::write_safetensors(d.path() / "model.safetensors", weights, {{"format", "pt"}});
  magellano::io::write_json_atomically(d.path() / "config.json",
      {{"model_type", "mamba"}, {"vocab_size", 50}, {"hidden_size", 24}, {"state_size", 16},
       {"num_hidden_layers", 2}, {"expand", 2}, {"conv_kernel", 4}, {"time_step_rank", "auto"},
       {"use_bias", false}, {"use_conv_bias", true}, {"tie_word_embeddings", true},
       {"layer_norm_epsilon", 1e-5}});
  auto loaded = train::load_model(d.path(), test_ctx());
  EXPECT_TRUE(loaded.hugging_face);
  Tensor ids = upload_i32(Shape{1, 9}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  magellano::autograd::NoGradScope ng;
  EXPECT_EQ(loaded.model->forward(ids).logits.to_host(), original.forward(ids).logits.to_host());
  // A config of another model type is refused with a clear message.
  magellano::io::write_json_atomically(d.path() / "config.json", {{"model_type", "llama"}});
  EXPECT_THROW(train::load_model(d.path(), test_ctx()), magellano::Error);
}

namespace {
bool is_matrix(const std::string& name) {
  return name.find("proj.weight") != std::string::npos || name.find("gate.weight") != std::string::npos ||
         name.find(".experts.") != std::string::npos || name == "backbone.embeddings.weight" ||
         name == "lm_head.weight";
}
}  // namespace

// train.param_dtype "fp16" (stochastic rounding, the default): checkpoints store the matrix
// weights as F16 (the rest F32, moments F32), resuming reproduces the run bit for bit (the
// rounding's random bits depend on the step, not on the process), and the saved checkpoint
// loads as an fp16 model that evaluates to the trainer's final validation loss.
TEST(Trainer, Fp16ParametersCheckpointAsF16AndResumeBitExactly) {
  TempDir a, b;
  auto cfg = small_config(a.path(), 8);
  cfg.checkpoint.every = 4;
  cfg.train.param_dtype = DType::f16;
  cfg.train.loss_scaling = true;
  const auto sa = train::train(cfg, test_ctx(), {});
  const fs::path a8 = a.path() / "run" / "step-00000008";
  const auto weights = magellano::io::SafetensorsReader::open(a8 / "model.safetensors");
  size_t halves = 0;
  for (const auto& n : weights.names()) {
    EXPECT_EQ(weights.dtype(n), is_matrix(n) ? magellano::io::StDType::F16 : magellano::io::StDType::F32) << n;
    halves += is_matrix(n);
  }
  EXPECT_GE(halves, 10u);
  const auto moments = magellano::io::SafetensorsReader::open(a8 / "optimizer.safetensors");
  for (const auto& n : moments.names()) EXPECT_EQ(moments.dtype(n), magellano::io::StDType::F32) << n;
  EXPECT_EQ(expect_resume_matches(a.path(), b.path()).train.param_dtype, DType::f16);
  auto loaded = train::load_model(a8, test_ctx());
  for (const auto& p : loaded.model->parameters())
    EXPECT_EQ(p.tensor.dtype(), is_matrix(p.name) ? DType::f16 : DType::f32) << p.name;
  ASSERT_TRUE(sa.val.has_value());
  const auto r = train::evaluate(*loaded.model, magellano::data::TokenFile::open(*cfg.data.val, 64).read_all(),
                                 cfg.train.seq_len, cfg.train.batch_size, cfg.eval.batches * cfg.train.batch_size);
  EXPECT_EQ(r.loss, sa.val->loss);
}

// The same run with fp16 and with fp32 parameters learns the same structure: the fp16 run's
// validation loss ends within 5% of the fp32 run's (measured: see the printout).
TEST(Trainer, Fp16ParametersLearnLikeFp32) {
  double val[2];
  for (int half = 0; half < 2; ++half) {
    TempDir d;
    auto cfg = small_config(d.path(), 150);
    cfg.train.log_every = 50;
    cfg.train.lr = 1e-2, cfg.train.min_lr = 1e-3, cfg.train.warmup_steps = 10;
    cfg.train.batch_size = 4;
    if (half) cfg.train.param_dtype = DType::f16, cfg.train.loss_scaling = true;
    const auto s = train::train(cfg, test_ctx(), {});
    ASSERT_TRUE(s.val.has_value());
    val[half] = s.val->loss;
  }
  std::cout << "validation loss after 150 steps: fp32 parameters " << val[0] << ", fp16 " << val[1] << "\n";
  EXPECT_LT(val[1], std::log(64.0) * 0.6);
  EXPECT_LT(std::fabs(val[1] - val[0]), 0.05 * val[0]);
}

// The tracker's parameter and gradient bytes of a built model and its optimizer equal the
// estimate of `info` (up to the pack's 64-element alignment of each tensor), for fp32 and fp16
// storage; fp16 stores the matrix weights (here 95% of the parameters) in half the bytes.
TEST(Trainer, Fp16ParameterBytesMatchTheEstimate) {
  uint64_t bytes[2];
  for (int half = 0; half < 2; ++half) {
    TempDir d;
    auto cfg = small_config(d.path(), 2);
    if (half) cfg.train.param_dtype = DType::f16, cfg.train.loss_scaling = true;
    auto& mem = test_ctx().memory();
    const uint64_t p0 = mem.current(magellano::MemCategory::parameters), g0 = mem.current(magellano::MemCategory::gradients);
    magellano::nn::Model model(test_ctx(), train::model_spec(cfg), 1);
    magellano::optim::AdamW opt(test_ctx(), model.trainable_parameters());
    const uint64_t params = mem.current(magellano::MemCategory::parameters) - p0;
    const uint64_t grads = mem.current(magellano::MemCategory::gradients) - g0;
    const auto e = train::estimate_memory(cfg);
    const uint64_t slack = 64 * 4 * model.parameters().size();
    EXPECT_GE(params, uint64_t(e.weights)) << "half " << half;
    EXPECT_LE(params, uint64_t(e.weights) + slack) << "half " << half;
    EXPECT_GE(grads, uint64_t(e.gradients)) << "half " << half;
    EXPECT_LE(grads, uint64_t(e.gradients) + slack) << "half " << half;
    bytes[half] = params;
  }
  EXPECT_LT(double(bytes[1]), 0.55 * double(bytes[0]));
}

// An int4 base's parameter bytes (the tracker's count: packed words, fp16 scales, the fp32 rest,
// the adapters) equal the estimate of `info` exactly but for the one dt_proj weight (32, 1) that
// stays fp32 (no group of 16 fits a width of 1): 32 x (4 - 0.625) = 108 bytes more.
TEST(Trainer, Int4BaseParameterBytesMatchTheEstimate) {
  TempDir d;
  auto cfg = small_config(d.path(), 2);
  cfg.lora.rank = 2, cfg.lora.base_precision = magellano::nn::WeightStorage::int4, cfg.lora.int4_group_size = 16;
  auto& mem = test_ctx().memory();
  const uint64_t p0 = mem.current(magellano::MemCategory::parameters);
  magellano::nn::Model model(test_ctx(), train::model_spec(cfg), 1);
  const uint64_t params = mem.current(magellano::MemCategory::parameters) - p0;
  int int4 = 0, dense = 0;
  for (const auto& l : model.linears()) {
    int4 += l.linear->storage() == magellano::nn::WeightStorage::int4;
    dense += l.linear->storage() == magellano::nn::WeightStorage::f32 && l.path.find("lm_head") == std::string::npos;
  }
  EXPECT_GT(int4, 10);
  EXPECT_EQ(dense, 1);  // dt_proj
  EXPECT_EQ(params, uint64_t(train::estimate_memory(cfg).weights) + 108);
}

// QLoRA run: an NF4 or int4 base, adapters on Mamba, router and experts, dropout, checkpointing
// every block, loss scaling. Checkpoints hold the adapter (PEFT files) and the adapters' optimizer
// state only; resuming reproduces the adapter bit for bit.
void qlora_run_resumes_bit_exactly(magellano::nn::WeightStorage base) {
  TempDir a, b;
  auto cfg = small_config(a.path(), 4);
  cfg.checkpoint.every = 2;
  cfg.lora.rank = 2, cfg.lora.dropout = 0.1, cfg.lora.base_precision = base;
  cfg.lora.int4_group_size = 16;  // int4: every Linear of width 16 or 32 (dt_proj's 1 stays fp32)
  cfg.lora.target_modules = {"in_proj", "x_proj", "dt_proj", "out_proj", "gate", "experts"};
  cfg.train.gradient_checkpointing = 1;
  cfg.train.loss_scaling = true;
  std::ostringstream log;
  train::TrainOptions opt;
  opt.out = &log;
  const auto sa = train::train(cfg, test_ctx(), opt);
  EXPECT_NE(log.str().find("trainable parameters: "), std::string::npos) << log.str();
  const fs::path a2 = a.path() / "run" / "step-00000002", a4 = a.path() / "run" / "step-00000004";
  for (const char* f : {"adapter_config.json", "adapter_model.safetensors", "optimizer.safetensors", "config.json"})
    EXPECT_TRUE(fs::exists(a4 / f)) << f;
  EXPECT_FALSE(fs::exists(a4 / "model.safetensors"));
  const auto moments = magellano::io::SafetensorsReader::open(a4 / "optimizer.safetensors");
  for (const auto& n : moments.names()) EXPECT_NE(n.find(".lora_"), std::string::npos) << n;
  const auto st = magellano::io::read_json(a4 / "trainer_state.json");
  EXPECT_EQ(st["loss_scaler"]["scale"], 65536.0);
  auto resumed = train::Config::from_json(magellano::io::read_json(a2 / "config.json"));
  resumed.checkpoint.dir = (b.path() / "run").string();
  train::TrainOptions o;
  o.resume = a2;
  train::train(resumed, test_ctx(), o);
  const fs::path b4 = b.path() / "run" / "step-00000004";
  EXPECT_EQ(bytes_of(a4 / "adapter_model.safetensors"), bytes_of(b4 / "adapter_model.safetensors"));
  EXPECT_EQ(bytes_of(a4 / "optimizer.safetensors"), bytes_of(b4 / "optimizer.safetensors"));
  // The adapter moved away from B = 0, and evaluation of the checkpoint (base from the seed +
  // adapter) gives the trainer's final validation loss.
  auto loaded = train::load_model(a4, test_ctx());
  ASSERT_TRUE(sa.val.has_value());
  const auto r = train::evaluate(*loaded.model, magellano::data::TokenFile::open(*cfg.data.val, 64).read_all(),
                                 cfg.train.seq_len, cfg.train.batch_size, cfg.eval.batches * cfg.train.batch_size);
  EXPECT_NEAR(r.loss, sa.val->loss, 1e-6);
  if (base == magellano::nn::WeightStorage::int4) {  // the base really was int4
    int int4 = 0;
    for (const auto& l : loaded.model->linears()) int4 += l.linear->storage() == magellano::nn::WeightStorage::int4;
    EXPECT_GT(int4, 10);
  }
}

TEST(Trainer, QLoRACheckpointsHoldTheAdapterAndResumeBitExactly) {
  qlora_run_resumes_bit_exactly(magellano::nn::WeightStorage::nf4);
}

TEST(Trainer, Int4QLoRACheckpointsHoldTheAdapterAndResumeBitExactly) {
  qlora_run_resumes_bit_exactly(magellano::nn::WeightStorage::int4);
}

// ---- AdamW's moment storage (train.optimizer_states, train.optimizer_offload) ----

// 8-bit moments checkpoint as codes and absmax and resume bit for bit.
TEST(Trainer, Int8MomentsCheckpointAndResumeBitExactly) {
  TempDir a, b;
  auto cfg = small_config(a.path(), 8);
  cfg.checkpoint.every = 4;
  cfg.train.optimizer_states = magellano::optim::StateFormat::int8;
  train::train(cfg, test_ctx(), {});
  const auto moments = magellano::io::SafetensorsReader::open(a.path() / "run" / "step-00000008" / "optimizer.safetensors");
  size_t codes = 0;
  for (const auto& n : moments.names()) {
    const bool is_code = n.size() > 6 && n.substr(n.size() - 6) == ".codes";
    EXPECT_EQ(moments.dtype(n), is_code ? magellano::io::StDType::U8 : magellano::io::StDType::F32) << n;
    codes += is_code;
  }
  EXPECT_GE(codes, 2u);
  EXPECT_EQ(expect_resume_matches(a.path(), b.path()).train.optimizer_states, magellano::optim::StateFormat::int8);
}

// Host-resident moments give the device-resident run's weights and moments byte for byte, and
// resume bit-exactly; a checkpoint of fp32 moments refuses to resume with int8 ones.
TEST(Trainer, HostOffloadedMomentsMatchAndResume) {
  TempDir a, b, c;
  auto cfg = small_config(a.path(), 8);
  cfg.checkpoint.every = 4;
  cfg.train.optimizer_offload = magellano::optim::StatePlacement::host;
  train::train(cfg, test_ctx(), {});
  auto dev = small_config(c.path(), 8);
  dev.checkpoint.every = 4;
  train::train(dev, test_ctx(), {});
  for (const char* f : {"model.safetensors", "optimizer.safetensors"})
    EXPECT_EQ(bytes_of(a.path() / "run" / "step-00000008" / f), bytes_of(c.path() / "run" / "step-00000008" / f)) << f;
  expect_resume_matches(a.path(), b.path());
  auto other = train::Config::from_json(magellano::io::read_json(a.path() / "run" / "step-00000004" / "config.json"));
  other.train.optimizer_states = magellano::optim::StateFormat::int8;
  other.checkpoint.dir = (c.path() / "other").string();
  train::TrainOptions o;
  o.resume = a.path() / "run" / "step-00000004";
  EXPECT_THROW(train::train(other, test_ctx(), o), magellano::Error);
}

// 8-bit AdamW follows fp32 AdamW's loss: the same 100-step run, every logged training loss
// within 3% and the final validation loss within 3% (measured: see the printout).
TEST(Trainer, Int8MomentsFollowFp32Loss) {
  std::vector<double> loss[2];
  double val[2];
  for (int q = 0; q < 2; ++q) {
    TempDir d;
    auto cfg = small_config(d.path(), 100);
    cfg.train.log_every = 10;
    cfg.train.lr = 1e-2, cfg.train.min_lr = 1e-3, cfg.train.warmup_steps = 10;
    cfg.train.batch_size = 4;
    if (q) cfg.train.optimizer_states = magellano::optim::StateFormat::int8;
    const auto s = train::train(cfg, test_ctx(), {});
    ASSERT_TRUE(s.val.has_value());
    val[q] = s.val->loss;
    loss[q] = losses(d.path() / "run" / "metrics.jsonl");
  }
  ASSERT_EQ(loss[0].size(), 10u);
  ASSERT_EQ(loss[1].size(), 10u);
  double worst = 0;
  for (size_t i = 0; i < 10; ++i) worst = std::max(worst, std::fabs(loss[1][i] - loss[0][i]) / loss[0][i]);
  std::cout << "100 steps: training loss fp32 " << loss[0].front() << " -> " << loss[0].back() << ", int8 "
            << loss[1].front() << " -> " << loss[1].back() << " (worst logged difference " << 100 * worst
            << "%); validation fp32 " << val[0] << ", int8 " << val[1] << "\n";
  EXPECT_LT(loss[0].back(), 0.7 * loss[0].front());
  EXPECT_LT(worst, 0.03);
  EXPECT_LT(std::fabs(val[1] - val[0]), 0.03 * val[0]);
}

// The optimizer's device bytes (the tracker's count) equal the estimate of `info` up to the
// pack's alignment: fp32 moments 8 bytes per element, int8 2 + 8/256, host placement one page.
TEST(Trainer, OptimizerBytesMatchTheEstimate) {
  using magellano::optim::StateFormat;
  using magellano::optim::StatePlacement;
  for (auto f : {StateFormat::fp32, StateFormat::int8})
    for (auto where : {StatePlacement::device, StatePlacement::host}) {
      TempDir d;
      auto cfg = small_config(d.path(), 2);
      cfg.train.optimizer_states = f;
      cfg.train.optimizer_offload = where;
      auto& mem = test_ctx().memory();
      magellano::nn::Model model(test_ctx(), train::model_spec(cfg), 1);
      const uint64_t o0 = mem.current(magellano::MemCategory::optimizer);
      magellano::optim::AdamW opt(test_ctx(), model.trainable_parameters(), {.states = f, .offload = where});
      const uint64_t moments = opt.device_state_bytes();
      EXPECT_LE(moments, mem.current(magellano::MemCategory::optimizer) - o0);
      const auto e = train::estimate_memory(cfg);
      const double per = magellano::optim::moment_bytes_per_element(f);
      const uint64_t slack = uint64_t(64 * per * double(model.parameters().size())) + 1022 * 4 + 8;
      // The small model fits one page: host placement stages all of it, and keeps it in host memory too.
      EXPECT_GE(moments + 8, uint64_t(e.optimizer_state)) << int(f) << int(where);
      EXPECT_LE(moments, uint64_t(e.optimizer_state) + slack) << int(f) << int(where);
      EXPECT_EQ(e.optimizer_host > 0, where == StatePlacement::host);
      if (where == StatePlacement::host) EXPECT_EQ(opt.host_state_bytes() > 0, true);
    }
}
