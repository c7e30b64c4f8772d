// The weight files of checkpoint folders: a model with Jamba's Mamba options (inner norms of dt,
// B and C, in/out_proj biases) round-trips through a folder; a folder whose weights are sharded
// the Hugging Face way (model.safetensors.index.json + shards) loads, quantizes and serves NF4
// weights to the same bits as the folder with one model.safetensors.
#include "error_text.hpp"
#include "harness.hpp"
#include "magellano/io/json_file.hpp"
#include "magellano/io/nf4_safetensors.hpp"
#include "magellano/io/quantize_file.hpp"
#include "magellano/io/safetensors_set.hpp"
#include "magellano/train/checkpoint.hpp"
#include "sharded_weights.hpp"
#include "small_model.hpp"
#include "temp_dir.hpp"

using namespace mgtest;
namespace fs = std::filesystem;
namespace io = magellano::io;
namespace train = magellano::train;

namespace {

// A small hybrid (Mamba, MoE, Mamba) with Jamba's mixer options and eps.
train::Config jamba_style_config() {
  return train::Config::from_json(nlohmann::json::parse(R"({"model": {
      "vocab_size": 61, "dim": 16, "layers": "MEM", "d_state": 4, "dt_rank": 3, "norm_eps": 1e-6,
      "mamba_inner_norms": true, "mamba_proj_bias": true,
      "moe": {"experts": 4, "top_k": 2, "hidden": 24}}})"));
}

bool is_jamba_option(const std::string& name) {  // dt / b / c_layernorm.weight, in_proj / out_proj.bias
  for (const char* part : {"layernorm.weight", "in_proj.bias", "out_proj.bias"})
    if (name.find(part) != std::string::npos) return true;
  return false;
}

// The model of `cfg` with the option tensors moved away from their init (1 and 0), so that one
// loaded wrongly or not at all shows in the logits.
std::unique_ptr<magellano::nn::Model> make_model(const train::Config& cfg) {
  auto m = std::make_unique<magellano::nn::Model>(test_ctx(), train::model_spec(cfg), 5);
  uint64_t seed = 70;
  for (auto& p : m->parameters())
    if (is_jamba_option(p.name))
      p.tensor.copy_from_host(to_f32(uniform(p.tensor.numel(), seed++, 0.3, 1.7)).data(), p.tensor.nbytes());
  return m;
}

// A Magellano checkpoint folder: config.json and the weights, in one file or `shards` shards.
void write_folder(const fs::path& dir, const train::Config& cfg, const magellano::nn::Model& m, int shards) {
  fs::create_directories(dir);
  io::write_json_atomically(dir / "config.json", cfg.to_json());
  if (shards == 1) io::write_safetensors(dir / io::kSafetensorsFile, tensors_of(m.parameters()), {{"format", "pt"}});
  else write_sharded_safetensors(dir, tensors_of(m.parameters()), shards);
}

std::vector<float> logits_of(const magellano::nn::Model& m) {
  magellano::autograd::NoGradScope ng;
  return m.forward(upload_i32(Shape{2, 7}, small_model_ids(14, 3))).logits.to_host();
}

}  // namespace

TEST(CheckpointFiles, JambaMambaOptionsRoundTrip) {
  TempDir d;
  const train::Config cfg = jamba_style_config();
  const auto original = make_model(cfg);
  write_folder(d.path(), cfg, *original, 1);
  const auto loaded = train::load_model(d.path(), test_ctx());
  EXPECT_EQ(loaded.config.model, cfg.model);
  const auto a = original->parameters(), b = loaded.model->parameters();
  ASSERT_EQ(a.size(), b.size());
  int options = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].name, b[i].name);
    EXPECT_EQ(a[i].tensor.to_host(), b[i].tensor.to_host()) << a[i].name;
    options += is_jamba_option(a[i].name);
  }
  EXPECT_EQ(options, 2 * 5);  // two Mamba blocks: dt / b / c norms, in_proj and out_proj biases
  EXPECT_EQ(logits_of(*loaded.model), logits_of(*original));
}

TEST(CheckpointFiles, ShardedFoldersLoadToTheSameBits) {
  TempDir d;
  const train::Config cfg = jamba_style_config();
  const auto original = make_model(cfg);
  write_folder(d / "one", cfg, *original, 1);
  write_folder(d / "three", cfg, *original, 3);
  const std::vector<float> want = logits_of(*original);
  // eval / generate (load_model), and --init-from / resume (load_weights of the folder).
  const auto one = train::load_model(d / "one", test_ctx()), three = train::load_model(d / "three", test_ctx());
  EXPECT_EQ(logits_of(*one.model), want);
  EXPECT_EQ(logits_of(*three.model), want);
  magellano::nn::Model fresh(test_ctx(), train::model_spec(cfg), 99);
  EXPECT_NE(logits_of(fresh), want);
  train::load_weights(d / "three", fresh);
  EXPECT_EQ(logits_of(fresh), want);
  // quantize: a sharded input gives the same single NF4 file as the one-file input.
  const auto q1 = io::quantize_checkpoint_dir(test_ctx(), d / "one", d / "q1");
  const auto q3 = io::quantize_checkpoint_dir(test_ctx(), d / "three", d / "q3");
  EXPECT_GT(q3.tensors_quantized, 0);
  EXPECT_EQ(q3.tensors_quantized, q1.tensors_quantized);
  EXPECT_EQ(io::SafetensorsSet::open(d / "q3").read("backbone.layers.0.mixer.in_proj.weight").bytes,
            io::SafetensorsSet::open(d / "q1").read("backbone.layers.0.mixer.in_proj.weight").bytes);
  EXPECT_EQ(logits_of(*train::load_model(d / "q3", test_ctx()).model),
            logits_of(*train::load_model(d / "q1", test_ctx()).model));
  // A tensor the model needs that the index does not list: one line naming the index.
  auto map = io::read_json(d / "three" / io::kSafetensorsIndex);
  map["weight_map"].erase("backbone.norm_f.weight");
  io::write_json_atomically(d / "three" / io::kSafetensorsIndex, map);
  expect_error([&] { train::load_model(d / "three", test_ctx()); },
               (d / "three" / io::kSafetensorsIndex).string() + " has no tensor 'backbone.norm_f.weight': it is not a "
               "checkpoint of this model");
}

// The six parts of one NF4 weight may land in different shards: the set finds each.
TEST(CheckpointFiles, Nf4WeightsSplitAcrossShards) {
  TempDir d;
  const Tensor w = upload(Shape{24, 64}, randn(24 * 64, 8));
  const magellano::ops::NF4Weight q = magellano::ops::quantize_nf4(w);
  const auto parts = io::nf4_to_st("layer.weight", q);
  ASSERT_EQ(parts.size(), 6u);
  write_sharded_safetensors(d.path(), parts, 2);  // three parts in each shard
  const auto set = io::SafetensorsSet::open(d.path());
  EXPECT_NE(&set.reader("layer.weight"), &set.reader("layer.weight" + std::string(io::kNF4QuantStateSuffix)));
  EXPECT_TRUE(io::is_nf4_weight(set, "layer.weight"));
  EXPECT_EQ(io::nf4_weight_names(set), std::vector<std::string>{"layer.weight"});
  const auto loaded = io::load_nf4(test_ctx(), set, "layer.weight");
  EXPECT_EQ(magellano::ops::dequantize_nf4(loaded).to_host(), magellano::ops::dequantize_nf4(q).to_host());
}
