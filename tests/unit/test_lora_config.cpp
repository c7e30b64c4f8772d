// The lora section, gradient checkpointing and loss-scaling keys: parsing, validation errors
// naming the key path, defaults, and what `info --config` reports for a LoRA run.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "magellano/runtime/error.hpp"
#include "magellano/train/checkpoint.hpp"
#include "magellano/train/config.hpp"
#include "magellano/train/model_size.hpp"
#include "error_text.hpp"
#include "project_files.hpp"

using mgtest::has;
using mgtest::error_of;
using namespace magellano;
using namespace magellano::train;
using nlohmann::json;

namespace {

Config parse(const std::string& text) { return Config::from_json(json::parse(text)); }

std::string preset(const std::string& name) { return mgtest::project_file("configs/" + name + ".json").string(); }

}  // namespace

TEST(LoRAConfig, DefaultsAndValues) {
  const Config d = Config::defaults();
  EXPECT_EQ(d.lora.rank, 0);
  EXPECT_FALSE(d.lora.enabled());
  EXPECT_EQ(d.lora.base_precision, nn::WeightStorage::f32);
  EXPECT_EQ(d.train.gradient_checkpointing, 0);
  EXPECT_FALSE(d.train.loss_scaling);
  EXPECT_EQ(d.train.loss_scale_init, 65536.0);
  EXPECT_EQ(d.train.loss_scale_growth_interval, 2000);
  const Config c = parse(R"({"lora": {"rank": 8, "alpha": 16, "dropout": 0.05,
      "target_modules": ["in_proj", "gate", "experts"], "base_precision": "fp16"},
      "train": {"gradient_checkpointing": "balanced"}})");
  EXPECT_EQ(c.lora.rank, 8);
  EXPECT_EQ(c.lora.target_modules, (std::vector<std::string>{"in_proj", "gate", "experts"}));
  EXPECT_EQ(c.train.gradient_checkpointing, 2);
  EXPECT_EQ(parse(R"({"train": {"gradient_checkpointing": "aggressive"}})").train.gradient_checkpointing, 4);
  EXPECT_EQ(parse(R"({"train": {"gradient_checkpointing": 3}})").train.gradient_checkpointing, 3);
  EXPECT_EQ(parse(R"({"train": {"gradient_checkpointing": "none"}})").train.gradient_checkpointing, 0);
  // to_json writes the preset names back, and round-trips.
  EXPECT_EQ(c.to_json()["train"]["gradient_checkpointing"], "balanced");
  EXPECT_EQ(Config::from_json(c.to_json()), c);
  const Config k3 = parse(R"({"train": {"gradient_checkpointing": 3}})");
  EXPECT_EQ(k3.to_json()["train"]["gradient_checkpointing"], 3);
  EXPECT_EQ(Config::from_json(k3.to_json()), k3);
}

TEST(LoRAConfig, ErrorsNameTheKey) {
  EXPECT_TRUE(has(error_of([] { parse(R"({"lora": {"rnak": 4}})"); }),
                  "unknown key 'lora.rnak' (did you mean 'lora.rank'?)"));
  EXPECT_TRUE(has(error_of([] { parse(R"({"lora": {"rank": -1}})"); }), "'lora.rank' must be in [0, 65536], got -1"));
  EXPECT_TRUE(has(error_of([] { parse(R"({"lora": {"rank": 4, "alpha": 0}})"); }), "'lora.alpha' must be > 0"));
  EXPECT_TRUE(has(error_of([] { parse(R"({"lora": {"dropout": 1}})"); }), "'lora.dropout' must be in [0, 1)"));
  EXPECT_TRUE(has(error_of([] { parse(R"({"lora": {"target_modules": "in_proj"}})"); }),
                  "'lora.target_modules' must be a list of names from"));
  EXPECT_TRUE(has(error_of([] { parse(R"({"lora": {"target_modules": ["in_proj", "qkv_proj"]}})"); }),
                  "\"qkv_proj\" is not one of them"));
  EXPECT_TRUE(has(error_of([] { parse(R"({"lora": {"target_modules": ["gate", "gate"]}})"); }),
                  "\"gate\" appears twice"));
  EXPECT_TRUE(has(error_of([] { parse(R"({"lora": {"rank": 4, "target_modules": []}})"); }),
                  "'lora.target_modules' is empty"));
  EXPECT_TRUE(has(error_of([] { parse(R"({"lora": {"base_precision": "int8"}})"); }),
                  "'lora.base_precision' must be \"fp32\" or \"fp16\" or \"nf4\" or \"int4\", got \"int8\""));
  EXPECT_TRUE(has(error_of([] { parse(R"({"lora": {"base_precision": "nf4"}})"); }),
                  "'lora.base_precision' \"nf4\" needs LoRA"));
  EXPECT_TRUE(has(error_of([] { parse(R"({"lora": {"base_precision": "int4"}})"); }),
                  "'lora.base_precision' \"int4\" needs LoRA"));
  EXPECT_TRUE(has(error_of([] { parse(R"({"lora": {"rank": 2, "base_precision": "int4", "int4_group_size": 0}})"); }),
                  "'lora.int4_group_size'"));
  EXPECT_TRUE(has(error_of([] { parse(R"({"train": {"gradient_checkpointing": "sometimes"}})"); }),
                  "'train.gradient_checkpointing' must be \"none\", \"balanced\" (every 2 layers)"));
  EXPECT_TRUE(has(error_of([] { parse(R"({"train": {"gradient_checkpointing": -2}})"); }),
                  "'train.gradient_checkpointing' must be"));
  EXPECT_TRUE(has(error_of([] { parse(R"({"train": {"activation_dtype": "fp16"}})"); }),
                  "'train.activation_dtype' \"fp16\" stores the segment inputs of gradient checkpointing"));
  EXPECT_TRUE(has(error_of([] { parse(R"({"train": {"activation_dtype": "bf16"}})"); }),
                  "'train.activation_dtype' must be \"fp32\" or \"fp16\""));
  EXPECT_EQ(parse(R"({"train": {"activation_dtype": "fp16", "gradient_checkpointing": 2}})").train.activation_dtype,
            DType::f16);
  EXPECT_TRUE(train::model_spec(parse(R"({"train": {"activation_dtype": "fp16", "gradient_checkpointing": 2}})"))
                  .checkpoint_inputs_fp16);
  EXPECT_TRUE(has(error_of([] { parse(R"({"train": {"loss_scale_init": 0.5}})"); }),
                  "'train.loss_scale_init' must be in [1, 1e+30]"));
  EXPECT_TRUE(has(error_of([] { parse(R"({"train": {"loss_scale_growth_interval": 0}})"); }),
                  "'train.loss_scale_growth_interval' must be >= 1"));
  // --set reaches the new keys.
  json doc = json::object();
  apply_set(doc, "train.gradient_checkpointing=aggressive");
  apply_set(doc, "lora.target_modules=[\"out_proj\"]");
  apply_set(doc, "lora.rank=2");
  const Config c = Config::from_json(doc);
  EXPECT_EQ(c.train.gradient_checkpointing, 4);
  EXPECT_EQ(c.lora.target_modules, std::vector<std::string>{"out_proj"});
}

TEST(LoRAConfig, TrainableCountAndEstimate) {
  // tiny: D 64, E 128, R 4, N 16, 6 Mamba + 2 MoE blocks (4 experts, F 192, SwiGLU).
  Config c = load_config(preset("tiny"), {"lora.rank=4", "lora.target_modules=[\"in_proj\",\"out_proj\",\"gate\",\"experts\"]"});
  const ParamCounts p = count_params(c);
  const int64_t want = 6 * (4 * (64 + 256) + 4 * (128 + 64)) + 2 * (4 * (64 + 4) + 4 * 3 * 4 * (64 + 192));
  EXPECT_EQ(p.trainable, want);
  EXPECT_EQ(p.total, count_params(c.model).total);
  const MemoryEstimate full = estimate_memory(c.model, c.train.batch_size, c.train.seq_len);
  const MemoryEstimate lora = estimate_memory(c);
  EXPECT_EQ(lora.gradients, want * 4);
  EXPECT_EQ(lora.optimizer_state, want * 8);
  EXPECT_LT(lora.total, full.total);
  c = load_config(preset("tiny"), {"lora.rank=4", "train.gradient_checkpointing=aggressive"});
  EXPECT_LT(estimate_memory(c).activations, lora.activations);
  // fp16 segment inputs: 2 segments of 4 blocks keep (B·L, D) inputs at 2 bytes instead of 4.
  Config half = c;
  half.train.activation_dtype = DType::f16;
  EXPECT_EQ(estimate_memory(c).activations - estimate_memory(half).activations,
            2 * c.train.batch_size * c.train.seq_len * 64 * 2);
}

TEST(LoRAConfig, InfoReportsTrainableParameters) {
  MG_REQUIRE_CLI();
  auto r = mgtest::run_cli({"info", "--config", preset("tiny"), "--set", "lora.rank=4", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const json j = json::parse(r.output);
  Config c = load_config(preset("tiny"), {"lora.rank=4"});
  EXPECT_EQ(j["params_trainable"], count_params(c).trainable);
  EXPECT_LT(j["params_trainable"].get<int64_t>(), j["params_total"].get<int64_t>() / 10);
}
