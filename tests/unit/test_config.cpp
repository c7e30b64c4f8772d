// The training config: presets and their sizes, validation errors that name the key path,
// --set overrides, the to_json round trip, layer patterns, the parameter counts against the
// real layers, the README's table against the schema, and `magellano info --config`.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "cli.hpp"
#include "harness.hpp"
#include "magellano/nn/embedding.hpp"
#include "magellano/nn/mamba.hpp"
#include "magellano/nn/moe.hpp"
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
namespace fs = std::filesystem;

namespace {

// configs/ of the source tree, found as the CLI finds it (tests/support/project_files.hpp).
fs::path configs_dir() { return mgtest::project_file("configs"); }
std::string preset(const std::string& name) { return (configs_dir() / (name + ".json")).string(); }

Config parse(const std::string& text) { return Config::from_json(json::parse(text)); }

fs::path write_temp(const std::string& name, const std::string& text) {
  const fs::path p = fs::temp_directory_path() / ("mg-config-test-" + name);
  std::ofstream(p) << text;
  return p;
}

}  // namespace

TEST(Config, PresetsLoadAndHitTheirSizes) {
  struct Want {
    const char* name;
    double target;
    int64_t exact;
  };
  for (const Want& w : {Want{"phase1", 77e6, 76856640}, Want{"phase2", 400e6, 398604544},
                        Want{"phase3", 800e6, 803640320}, Want{"production3B", 3284e6, 3274516480}}) {
    SCOPED_TRACE(w.name);
    const Config c = load_config(preset(w.name));
    const ParamCounts p = count_params(c.model);
    EXPECT_EQ(p.total, w.exact);
    EXPECT_NEAR(static_cast<double>(p.total) / w.target, 1.0, 0.03);
    EXPECT_EQ(c.model.vocab_size, 50257);
    EXPECT_EQ(c.train.seq_len, 512);
    // Mamba : MoE about 10 : 3.
    EXPECT_EQ(p.mamba_layers * 3, p.moe_layers * 10);
  }
  const Config prod = load_config(preset("production3B"));
  EXPECT_EQ(prod.model.num_mamba(), 30);
  EXPECT_EQ(prod.model.num_moe(), 9);
  EXPECT_EQ(prod.model.moe.experts, 8);
  EXPECT_EQ(prod.model.moe.top_k, 2);

  const Config tiny = load_config(preset("tiny"));
  const ParamCounts t = count_params(tiny.model);
  EXPECT_EQ(tiny.model.vocab_size, 8192);
  EXPECT_EQ(t.total, 1016128);
  EXPECT_GE(t.total, 200000);
  EXPECT_LE(t.total, 5000000);
}

TEST(Config, DefaultsAreValidAndResolved) {
  const Config c = Config::defaults();
  EXPECT_EQ(c.model.dt_rank, (c.model.dim + 15) / 16);
  EXPECT_EQ(c.model.moe.hidden % 64, 0);
  EXPECT_EQ(c.model.moe.hidden, 2112);  // round(2.75 * 768 / 64) * 64
  EXPECT_FALSE(c.data.train.has_value());
  EXPECT_EQ(c.train.grad_accum, 1);
  EXPECT_EQ(c.train.weight_decay, 0.1);
  EXPECT_EQ(c.checkpoint.keep, 3);
  EXPECT_EQ(c.device, "");
  EXPECT_TRUE(has(error_of([&] { c.require_training_data(); }), "'data.train' is not set"));
  for (const char* key : {"train.steps", "train.batch_size", "train.seq_len", "train.lr", "train.seed",
                          "data.train", "data.val", "checkpoint.dir", "checkpoint.every", "device"}) {
    const auto keys = config_keys();
    EXPECT_NE(std::find(keys.begin(), keys.end(), key), keys.end()) << key;
  }
}

TEST(Config, UnknownKeysAndWrongTypesNameTheKeyPath) {
  EXPECT_EQ(error_of([] { parse(R"({"train": {"stpes": 3}})"); }),
            "config: unknown key 'train.stpes' (did you mean 'train.steps'?); configs/README.md lists every key.");
  EXPECT_TRUE(has(error_of([] { parse(R"({"modle": {}})"); }), "unknown key 'modle' (did you mean 'model'?)"));
  EXPECT_TRUE(has(error_of([] { parse(R"({"model": {"experts": 4}})"); }),
                  "unknown key 'model.experts' (did you mean 'model.moe.experts'?)"));
  EXPECT_TRUE(has(error_of([] { parse(R"({"zzzzzzzz": 1})"); }), "unknown key 'zzzzzzzz';"));
  EXPECT_EQ(error_of([] { parse(R"({"train": {"lr": "fast"}})"); }),
            "config: 'train.lr' must be a number, got a string (\"fast\").");
  EXPECT_EQ(error_of([] { parse(R"({"train": {"steps": 1.5}})"); }),
            "config: 'train.steps' must be an integer, got a number (1.5).");
  EXPECT_TRUE(has(error_of([] { parse(R"({"model": {"tie_embeddings": 1}})"); }),
                  "'model.tie_embeddings' must be true or false, got an integer (1)"));
  EXPECT_TRUE(has(error_of([] { parse(R"({"model": {"moe": 8}})"); }),
                  "'model.moe' must be an object (a section), got an integer (8)"));
  EXPECT_TRUE(has(error_of([] { parse(R"({"data": {"train": 5}})"); }),
                  "'data.train' must be a path (string) or null, got an integer (5)"));
  EXPECT_TRUE(has(error_of([] { parse(R"({"model": {"moe": {"activation": "relu"}}})"); }),
                  "'model.moe.activation' must be \"swiglu\" or \"gelu\", got \"relu\""));
  EXPECT_TRUE(has(error_of([] { parse(R"({"device": null})"); }), "'device' must be a string, got null"));
  // train.param_dtype: fp32 (default) or fp16 storage of the matrix weights, which needs loss
  // scaling (fp16 gradients) and full training (not LoRA).
  EXPECT_EQ(Config::defaults().train.param_dtype, DType::f32);
  EXPECT_EQ(parse(R"({"train": {"param_dtype": "fp16", "loss_scaling": true}})").train.param_dtype, DType::f16);
  EXPECT_EQ(load_config(preset("tiny"), {"train.param_dtype=fp16", "train.loss_scaling=true"}).train.param_dtype,
            DType::f16);
  EXPECT_EQ(model_spec(parse(R"({"train": {"param_dtype": "fp16", "loss_scaling": true}})")).weight_dtype,
            magellano::DType::f16);
  EXPECT_EQ(model_spec(Config::defaults()).weight_dtype, magellano::DType::f32);
  EXPECT_TRUE(has(error_of([] { parse(R"({"train": {"param_dtype": "fp16"}})"); }),
                  "'train.param_dtype' \"fp16\" stores gradients in fp16 too, where small ones underflow "
                  "to zero: set 'train.loss_scaling' to true"));
  EXPECT_TRUE(has(error_of([] { parse(R"({"train": {"param_dtype": "fp16", "loss_scaling": true}, "lora": {"rank": 4}})"); }),
                  "'train.param_dtype' \"fp16\" is for full training"));
  // train.fp16_rounding: how fp16 weights are rounded after an update; only with fp16 weights.
  EXPECT_EQ(Config::defaults().train.fp16_rounding, Fp16Rounding::stochastic);
  EXPECT_EQ(parse(R"({"train": {"param_dtype": "fp16", "loss_scaling": true, "fp16_rounding": "nearest"}})")
                .train.fp16_rounding, Fp16Rounding::nearest);
  EXPECT_TRUE(has(error_of([] { parse(R"({"train": {"fp16_rounding": "nearest"}})"); }),
                  "'train.fp16_rounding' \"nearest\" rounds fp16 parameters: it needs 'train.param_dtype' \"fp16\""));
  EXPECT_TRUE(has(error_of([] { parse(R"({"train": {"fp16_rounding": "up"}})"); }),
                  "'train.fp16_rounding' must be \"stochastic\" or \"nearest\", got \"up\""));
  EXPECT_TRUE(has(error_of([] { parse(R"({"train": {"param_dtype": "bf16"}})"); }),
                  "'train.param_dtype' must be \"fp32\" or \"fp16\", got \"bf16\""));
  EXPECT_TRUE(has(error_of([] { parse(R"({"train": {"param_dtype": 16}})"); }), "'train.param_dtype'"));
  EXPECT_TRUE(has(error_of([] { parse(R"([1, 2])"); }), "top level must be a JSON object"));
  // Integral numbers written as floats are integers.
  EXPECT_EQ(parse(R"({"train": {"steps": 1e4}})").train.steps, 10000);
}

// train.objective and its prefix keys (data/objective.hpp).
TEST(Config, PrefixLmObjectiveKeys) {
  const char* model = R"("model": {"layers": "MA", "vocab_size": 100})";
  const Config c = parse(std::string("{") + model + R"(, "train": {"objective": "prefix_lm", "prefix_fraction_min": 0.1,
      "prefix_fraction_max": 0.9, "prefix_separator": 42}})");
  EXPECT_EQ(c.train.objective.objective, magellano::data::Objective::prefix_lm);
  EXPECT_EQ(c.train.objective.min_fraction, 0.1);
  EXPECT_EQ(c.train.objective.max_fraction, 0.9);
  EXPECT_EQ(c.train.objective.separator, 42);
  EXPECT_EQ(Config::from_json(c.to_json()).train.objective, c.train.objective);
  EXPECT_EQ(Config::defaults().train.objective.objective, magellano::data::Objective::causal);
  auto err = [&](const std::string& train) {
    return error_of([&] { parse(std::string("{") + model + R"(, "train": )" + train + "}"); });
  };
  EXPECT_TRUE(has(err(R"({"objective": "mlm"})"), "'train.objective' must be \"causal\" or \"prefix_lm\" or \"blank_infilling\", got \"mlm\""));
  EXPECT_TRUE(has(err(R"({"prefix_fraction_min": 0.8, "prefix_fraction_max": 0.5})"),
                  "'train.prefix_fraction_min' (0.8) must be <= 'train.prefix_fraction_max' (0.5)"));
  EXPECT_TRUE(has(err(R"({"prefix_fraction_max": 1.5})"), "'train.prefix_fraction_max'"));
  EXPECT_TRUE(has(err(R"({"prefix_separator": 100})"), "'train.prefix_separator' 100 is not a token of the model's vocabulary of 100"));
  EXPECT_TRUE(has(err(R"({"prefix_separator": -2})"), "'train.prefix_separator'"));
  EXPECT_TRUE(has(error_of([] { parse(R"({"model": {"layers": "ME"}, "train": {"objective": "prefix_lm"}})"); }),
                  "'train.objective' \"prefix_lm\" makes the prefix bidirectional in attention layers, and 'model.layers' has none"));
  EXPECT_TRUE(parse(R"({"model": {"layers": "MA", "bidirectional_prefix": true}})").model.bidirectional_prefix);
  EXPECT_TRUE(parse(R"({"model": {"layers": "MA", "bidirectional_prefix": true}})").model.mamba_config().bidirectional_prefix);
  EXPECT_TRUE(parse(R"({"model": {"layers": "SA", "bidirectional_prefix": true}})").model.mamba2_config().bidirectional_prefix);
  EXPECT_FALSE(parse(R"({"model": {"layers": "SA"}})").model.mamba2_config().bidirectional_prefix);
  EXPECT_TRUE(has(error_of([] { parse(R"({"model": {"layers": "FA", "bidirectional_prefix": true}})"); }),
                  "'model.bidirectional_prefix' reverses the prefix in Mamba ('M') and Mamba2 ('S') layers, and 'model.layers' has none"));
}

// Blank infilling's keys and the objective mix (data/blank_infilling.hpp, data/objective.hpp).
TEST(Config, BlankInfillingAndMixKeys) {
  const char* model = R"("model": {"layers": "MA", "vocab_size": 100})";
  const Config c = parse(std::string("{") + model + R"(, "train": {"objective": "blank_infilling", "infill_mode": "document",
      "infill_ratio": 0.2, "infill_span_lambda": 2.5}})");
  EXPECT_EQ(c.train.objective.objective, magellano::data::Objective::blank_infilling);
  EXPECT_EQ(c.train.objective.infill.mode, magellano::data::InfillMode::document);
  EXPECT_EQ(c.train.objective.infill.ratio, 0.2);
  EXPECT_EQ(c.train.objective.infill.span_lambda, 2.5);
  EXPECT_EQ(Config::from_json(c.to_json()).train.objective, c.train.objective);
  const Config m = parse(std::string("{") + model + R"(, "train": {"objective_mix": {"causal": 1, "blank_infilling": 3}}})");
  EXPECT_TRUE(m.train.objective.mixed());
  EXPECT_EQ(m.train.objective.mix, (std::array<double, 3>{1, 0, 3}));
  EXPECT_TRUE(m.train.objective.uses(magellano::data::Objective::blank_infilling));
  EXPECT_FALSE(m.train.objective.uses(magellano::data::Objective::prefix_lm));
  EXPECT_EQ(Config::from_json(m.to_json()).train.objective, m.train.objective);
  auto err = [&](const std::string& train) {
    return error_of([&] { parse(std::string("{") + model + R"(, "train": )" + train + "}"); });
  };
  EXPECT_TRUE(has(err(R"({"infill_mode": "words"})"), "'train.infill_mode' must be \"spans\" or \"document\" or \"single\""));
  EXPECT_TRUE(has(err(R"({"infill_ratio": 0.6})"), "'train.infill_ratio'"));
  EXPECT_TRUE(has(err(R"({"infill_ratio": 0})"), "'train.infill_ratio'"));
  EXPECT_TRUE(has(err(R"({"infill_span_lambda": 0})"), "'train.infill_span_lambda'"));
  EXPECT_TRUE(has(err(R"({"objective_mix": {"causal": -1}})"), "'train.objective_mix.causal'"));
  EXPECT_TRUE(has(err(R"({"objective": "prefix_lm", "objective_mix": {"causal": 1}})"),
                  "give 'train.objective' or 'train.objective_mix', not both"));
  EXPECT_TRUE(has(err(R"({"objective": "blank_infilling", "seq_len": 2})"), "blank infilling needs 'train.seq_len' >= 3"));
  EXPECT_TRUE(has(error_of([] { parse(R"({"model": {"layers": "ME"}, "train": {"objective_mix": {"blank_infilling": 1}}})"); }),
                  "'train.objective' \"blank_infilling\" makes the prefix bidirectional in attention layers"));
  EXPECT_TRUE(has(error_of([] { parse(R"({"model": {"layers": "MA", "vocab_size": 3}, "train": {"objective": "blank_infilling"}})"); }),
                  "blank infilling needs a vocabulary of at least 4 ids"));
}

TEST(Config, ValuesAreRangeChecked) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"model": {"dim": 0}})", "config: 'model.dim' must be >= 1, got 0."},
      {R"({"train": {"batch_size": -2}})", "config: 'train.batch_size' must be >= 1, got -2."},
      {R"({"train": {"lr": 0}})", "config: 'train.lr' must be > 0, got 0."},
      {R"({"train": {"beta2": 1.0}})", "config: 'train.beta2' must be in [0, 1), got 1."},
      {R"({"train": {"beta1": -0.1}})", "config: 'train.beta1' must be in [0, 1), got -0.1."},
      {R"({"model": {"norm_eps": 0}})", "config: 'model.norm_eps' must be in (0, 1), got 0."},
      {R"({"checkpoint": {"keep": 0}})", "config: 'checkpoint.keep' must be >= 1, got 0."},
      {R"({"model": {"moe": {"experts": 2, "top_k": 3}}})",
       "config: 'model.moe.top_k' (3) must be <= 'model.moe.experts' (2)."},
      {R"({"train": {"lr": 1e-4, "min_lr": 1e-3}})", "config: 'train.min_lr' (0.001) must be <= 'train.lr' (0.0001)."},
      {R"({"train": {"steps": 10, "warmup_steps": 20}})",
       "config: 'train.warmup_steps' (20) must be <= 'train.steps' (10)."},
      {R"({"checkpoint": {"dir": ""}})", "config: 'checkpoint.dir' must be a folder name, got an empty string."},
      {R"({"data": {"val": ""}})", "config: 'data.val' must be a path or null, got an empty string."},
  };
  for (const auto& [text, want] : cases) EXPECT_EQ(error_of([&] { parse(text); }), want) << text;
  EXPECT_EQ(parse(R"({"train": {"grad_clip": 0}})").train.grad_clip, 0.0);  // 0 = off
  EXPECT_EQ(parse(R"({"eval": {"every": 0}})").eval.every, 0);
}

TEST(Config, FileErrors) {
  const std::string missing = (fs::temp_directory_path() / "mg-no-such-config.json").string();
  EXPECT_EQ(error_of([&] { load_config(missing); }),
            "config: cannot read '" + missing + "': no such file. Give the path of a JSON config, e.g. configs/tiny.json.");
  const auto bad = write_temp("bad.json", "{\n  \"train\": {\"steps\": 3,}\n}\n");
  const std::string e = error_of([&] { load_config(bad.string()); });
  EXPECT_TRUE(has(e, "config: '" + bad.string() + "' is not valid JSON: parse error at line 2, column")) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  // Comments are allowed; errors inside a file name it.
  const auto commented = write_temp("commented.json", "// tiny\n{\"train\": {\"steps\": 700}}\n");
  EXPECT_EQ(load_config(commented.string()).train.steps, 700);
  const auto wrong = write_temp("wrong.json", R"({"train": {"stpes": 3}})");
  EXPECT_TRUE(has(error_of([&] { load_config(wrong.string()); }),
                  "unknown key 'train.stpes' (did you mean 'train.steps'?); configs/README.md lists every key. (in " +
                      wrong.string() + ")"));
  EXPECT_TRUE(has(error_of([&] { load_config(fs::temp_directory_path().string()); }), "is a folder"));
}

TEST(Config, SetOverridesAnyKey) {
  const Config c = load_config(preset("tiny"), {"train.lr=0.01", "model.moe.experts=6", "device=gpu",
                                                "data.val=null", "model.layers=(MME)x2", "train.seq_len=64",
                                                "data.train=some/file.tok", "device=0:1"});
  EXPECT_EQ(c.train.lr, 0.01);
  EXPECT_EQ(c.model.moe.experts, 6);
  EXPECT_FALSE(c.data.val.has_value());
  EXPECT_EQ(c.model.layers, "(MME)x2");
  EXPECT_EQ(c.model.num_moe(), 2);
  EXPECT_EQ(c.train.seq_len, 64);
  EXPECT_EQ(*c.data.train, "some/file.tok");
  EXPECT_EQ(c.device, "0:1");  // later sets win; not JSON, so a string
  EXPECT_EQ(load_config(preset("tiny"), {"device=1"}).device, "1");  // a string key keeps the text
  EXPECT_EQ(*load_config(preset("tiny"), {"data.train=2024"}).data.train, "2024");
  // A whole section as an object merges into it.
  const Config s = load_config(preset("tiny"), {R"(model.moe={"top_k": 1})"});
  EXPECT_EQ(s.model.moe.top_k, 1);
  EXPECT_EQ(s.model.moe.experts, 4);  // kept from the file
  // Bad paths and values.
  EXPECT_TRUE(has(error_of([] { load_config(preset("tiny"), {"train.stpes=3"}); }),
                  "config: unknown key 'train.stpes' (did you mean 'train.steps'?)"));
  EXPECT_TRUE(has(error_of([] { load_config(preset("tiny"), {"train.lr"}); }), "must look like key.path=value"));
  EXPECT_TRUE(has(error_of([] { load_config(preset("tiny"), {"model=3"}); }), "'model' is a section"));
  EXPECT_EQ(error_of([] { load_config(preset("tiny"), {"train.lr=fast"}); }),
            "config: 'train.lr' must be a number, got a string (\"fast\"). (from --set train.lr=fast)");
  EXPECT_TRUE(has(error_of([] { load_config(preset("tiny"), {"train.beta1=1"}); }), "'train.beta1' must be in [0, 1)"));
}

TEST(Config, ToJsonRoundTrips) {
  for (const char* name : {"tiny", "phase1", "phase2", "phase3", "production3B"}) {
    const Config c = load_config(preset(name), {"data.val=null"});
    const json j = c.to_json();
    EXPECT_EQ(Config::from_json(j), c) << name;
    EXPECT_EQ(Config::from_json(json::parse(j.dump())).to_json(), j) << name;
    for (const auto& key : config_keys()) {
      std::string ptr = "/" + key;
      std::replace(ptr.begin(), ptr.end(), '.', '/');
      EXPECT_TRUE(j.contains(json::json_pointer(ptr))) << key;
    }
  }
  // A list of layers comes back as one letter per layer.
  const Config l = parse(R"({"model": {"layers": ["mamba", "moe", "mamba"]}})");
  EXPECT_EQ(l.model.layers, "MEM");
  EXPECT_EQ(Config::from_json(l.to_json()), l);
  EXPECT_EQ(Config::defaults().to_json()["model"]["moe"]["hidden"], 2112);
}

// Jamba's Mamba mixer options: off by default (today's mixer), carried into nn::MambaConfig
// with the model's norm eps, written by to_json, type-checked.
TEST(Config, MambaJambaOptions) {
  const Config d = Config::defaults();
  EXPECT_FALSE(d.model.mamba_inner_norms);
  EXPECT_FALSE(d.model.mamba_proj_bias);
  EXPECT_TRUE(d.model.mamba_conv_bias);
  const nn::MambaConfig dm = d.model.mamba_config();
  EXPECT_FALSE(dm.inner_norms);
  EXPECT_FALSE(dm.proj_bias);
  EXPECT_TRUE(dm.conv_bias);
  const Config c = parse(R"({"model": {"mamba_inner_norms": true, "mamba_proj_bias": true,
                                       "mamba_conv_bias": false, "norm_eps": 1e-6}})");
  const nn::MambaConfig m = c.model.mamba_config();
  EXPECT_TRUE(m.inner_norms);
  EXPECT_TRUE(m.proj_bias);
  EXPECT_FALSE(m.conv_bias);
  EXPECT_FLOAT_EQ(m.norm_eps, 1e-6f);
  EXPECT_EQ(c.to_json()["model"]["mamba_inner_norms"], true);
  EXPECT_EQ(Config::from_json(c.to_json()), c);
  EXPECT_EQ(load_config(preset("tiny"), {"model.mamba_inner_norms=true"}).model.mamba_inner_norms, true);
  EXPECT_TRUE(has(error_of([] { parse(R"({"model": {"mamba_inner_norms": 1}})"); }),
                  "'model.mamba_inner_norms' must be true or false, got an integer (1)"));
  EXPECT_TRUE(has(error_of([] { parse(R"({"model": {"mamba_proj_bias": "yes"}})"); }),
                  "'model.mamba_proj_bias' must be true or false"));
}

TEST(Config, LayerPatterns) {
  using K = LayerKind;
  EXPECT_EQ(parse_layer_pattern("MME"), (std::vector<K>{K::mamba, K::mamba, K::moe}));
  const auto p = parse_layer_pattern("(MMME)x9MMM");
  ASSERT_EQ(p.size(), 39u);
  EXPECT_EQ(layer_string(p), std::string("MMME").append("MMMEMMMEMMMEMMMEMMMEMMMEMMMEMMME") + "MMM");
  EXPECT_EQ(layer_string(parse_layer_pattern("((ME)x2M)x2")), "MEMEMMEMEM");
  EXPECT_EQ(layer_string(parse_layer_pattern(" (M M E) x 2 Ex3 ")), "MMEMMEEEE");
  EXPECT_EQ(layer_string(parse_layer_list(json::parse(R"(["mamba", "moe", "M", "E"])"))), "MEME");
  for (const char* bad : {"", "MMX", "(MME", "MME)", "()x3", "(ME)x", "(ME)x0", "mme", "Mx99999"}) {
    const std::string e = error_of([&] { parse_layer_pattern(bad, "'model.layers'"); });
    EXPECT_TRUE(has(e, "config: 'model.layers' \"" + std::string(bad) + "\" is not a valid layer pattern")) << e;
  }
  EXPECT_TRUE(has(error_of([] { parse_layer_pattern("MMX"); }), "unexpected 'X'"));
  EXPECT_TRUE(has(error_of([] { parse_layer_pattern("MMX"); }), "at position 3"));
  EXPECT_EQ(layer_string(parse_layer_list(json::parse(R"(["attention", "mlp", "A", "F"])"))), "AFAF");
  EXPECT_TRUE(has(error_of([] { parse(R"({"model": {"layers": ["mamba", "transformer"]}})"); }),
                  "'model.layers'[1] must be \"mamba\", \"mamba2\", \"attention\", \"moe\" or \"mlp\", got "
                  "\"transformer\""));
  EXPECT_TRUE(has(error_of([] { parse(R"({"model": {"layers": []}})"); }), "'model.layers' is empty"));
  EXPECT_TRUE(has(error_of([] { parse(R"({"model": {"layers": 12}})"); }), "'model.layers' must be a layer pattern"));
  EXPECT_TRUE(has(error_of([] { parse(R"({"model": {"layers": "MMQ"}})"); }), "'model.layers' \"MMQ\" is not a valid"));
}

// The analytical counts equal what the layers really allocate (odd sizes, both activations,
// an explicit dt_rank, an untied head).
TEST(Config, ParamCountsMatchTheLayers) {
  Context& ctx = mgtest::test_ctx();
  for (const char* text :
       {R"({"model": {"vocab_size": 97, "dim": 40, "layers": "MMEM", "moe": {"experts": 3, "top_k": 2, "hidden": 24}}})",
        R"({"model": {"vocab_size": 50, "dim": 24, "d_state": 5, "d_conv": 3, "expand": 3, "dt_rank": 7,
                      "tie_embeddings": false, "layers": "EM",
                      "moe": {"experts": 5, "top_k": 1, "hidden": 16, "activation": "gelu"}}})",
        R"({"model": {"vocab_size": 50, "dim": 24, "d_state": 5, "dt_rank": 3, "layers": "ME",
                      "mamba_inner_norms": true, "mamba_proj_bias": true, "mamba_conv_bias": false,
                      "moe": {"experts": 2, "top_k": 1, "hidden": 16}}})"}) {
    const Config c = parse(text);
    const ParamCounts p = count_params(c.model);
    nn::Init init(1);
    nn::MambaBlock mb(ctx, c.model.mamba_config(), init);
    nn::MoEBlock eb(ctx, c.model.moe_config(), init);
    nn::Embedding emb(ctx, c.model.vocab_size, c.model.dim, init);
    nn::RMSNorm fnorm(ctx, c.model.dim);
    EXPECT_EQ(p.mamba_block, mb.num_parameters());
    EXPECT_EQ(p.moe_block, eb.num_parameters());
    EXPECT_EQ(p.embedding, emb.num_parameters());
    EXPECT_EQ(p.final_norm, fnorm.num_parameters());
    const int64_t head = c.model.tie_embeddings ? 0 : c.model.vocab_size * c.model.dim;
    EXPECT_EQ(p.total, emb.num_parameters() + fnorm.num_parameters() + head +
                           c.model.num_mamba() * mb.num_parameters() + c.model.num_moe() * eb.num_parameters());
    EXPECT_EQ(p.trainable, p.total);
    const auto& ex0 = eb.moe.experts[0];
    const int64_t expert = static_cast<int64_t>(ex0.w1->weight.numel() + ex0.w2->weight.numel() +
                                                (ex0.w3 ? ex0.w3->weight.numel() : 0));
    EXPECT_EQ(p.expert, expert);
    EXPECT_EQ(p.active_per_token,
              p.total - c.model.num_moe() * (c.model.moe.experts - c.model.moe.top_k) * expert);
  }
}

TEST(Config, MemoryEstimateAddsUp) {
  const Config c = load_config(preset("production3B"));
  const ParamCounts p = count_params(c.model);
  const MemoryEstimate m = estimate_memory(c.model, 4, 512);
  EXPECT_EQ(m.weights, p.total * 4);
  EXPECT_EQ(m.gradients, p.total * 4);
  EXPECT_EQ(m.optimizer_state, p.total * 8);
  EXPECT_EQ(m.activations, m.mamba_activations + m.scan_states + m.moe_activations + m.head + m.workspace);
  EXPECT_EQ(m.total, m.weights + m.gradients + m.optimizer_state + m.activations);
  EXPECT_GE(m.head, int64_t(2) * 4 * 512 * 50257 * 4);  // logits twice
  // Activations scale with the batch; the rest does not.
  const MemoryEstimate m2 = estimate_memory(c.model, 8, 512);
  EXPECT_EQ(m2.weights, m.weights);
  EXPECT_NEAR(static_cast<double>(m2.activations) / m.activations, 2.0, 0.01);
  // The production preset fits an 80 GB GPU at its configured micro-batch.
  EXPECT_LT(estimate_memory(c.model, c.train.batch_size, c.train.seq_len).total, int64_t(78) << 30);
}

TEST(Config, MemoryEstimateOfFp16Parameters) {
  // The matrix weights (every Linear weight, the embedding) and their gradients take 2 bytes;
  // the workspace adds the fp32 copy of the largest (here the tied embedding, V x D).
  const Config c = load_config(preset("phase1"));
  const Config h = load_config(preset("phase1"), {"train.param_dtype=fp16", "train.loss_scaling=true"});
  const MemoryEstimate m = estimate_memory(c), m16 = estimate_memory(h);
  const int64_t matrices = count_lora(c).linear_weights + count_params(c.model).embedding;
  EXPECT_EQ(m.weights - m16.weights, 2 * matrices);
  EXPECT_EQ(m.gradients - m16.gradients, 2 * matrices);
  EXPECT_EQ(m16.optimizer_state, m.optimizer_state);
  EXPECT_EQ(m16.workspace - m.workspace, c.model.vocab_size * c.model.dim * 4);
  EXPECT_EQ(m16.total, m16.weights + m16.gradients + m16.optimizer_state + m16.activations);
  EXPECT_GT(double(matrices) / double(count_params(c.model).total), 0.99);
}

// configs/README.md documents every key with its default: the table must match the schema.
TEST(Config, ReadmeDocumentsEveryKeyAndDefault) {
  std::ifstream in(configs_dir() / "README.md");
  ASSERT_TRUE(in) << "configs/README.md is missing";
  const std::regex row(R"(^\|\s*`([a-z_.0-9]+)`\s*\|[^|]*\|\s*`([^`]*)`\s*\|)");
  const json defaults = Config::from_json(json::object()).to_json();
  std::set<std::string> documented;
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (!std::regex_search(line, m, row)) continue;
    const std::string key = m[1];
    documented.insert(key);
    std::string ptr = "/" + key;
    std::replace(ptr.begin(), ptr.end(), '.', '/');
    ASSERT_TRUE(defaults.contains(json::json_pointer(ptr))) << "README documents unknown key " << key;
    const std::string doc = m[2];
    const json& want = defaults[json::json_pointer(ptr)];
    if (key == "model.dt_rank" || key == "model.moe.hidden") {
      EXPECT_EQ(doc, "0") << key;  // documented as 0 = automatic; resolved on load
      continue;
    }
    EXPECT_EQ(json::parse(doc), want) << key << ": README says " << doc << ", code says " << want.dump();
  }
  for (const auto& key : config_keys()) EXPECT_TRUE(documented.count(key)) << key << " is not in configs/README.md";
}

TEST(Config, InfoPrintsSizesAsJson) {
  MG_REQUIRE_CLI();
  auto r = mgtest::run_cli({"info", "--config", preset("tiny"), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const json j = json::parse(r.output);
  EXPECT_EQ(j["params_total"], 1016128);
  EXPECT_EQ(j["params_trainable"], 1016128);
  EXPECT_LT(j["params_active_per_token"].get<int64_t>(), 1016128);
  for (const char* key : {"weights", "gradients", "optimizer_state", "activations", "total"})
    EXPECT_TRUE(j["memory_estimate_bytes"].contains(key)) << key;
  EXPECT_EQ(j["memory_estimate_bytes"]["weights"], 4 * 1016128);

  r = mgtest::run_cli({"info", "--config", preset("tiny"), "--set", "train.batch_size=16", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(json::parse(r.output)["memory_estimate_bytes"]["batch"], 16);

  r = mgtest::run_cli({"info", "--config", preset("production3B")});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(has(r.output, "3,274,516,480")) << r.output;
  EXPECT_TRUE(has(r.output, "optimizer state")) << r.output;
}

// info --config reports AdamW's moment memory: 8 bytes per trained parameter in fp32, 2 + 8/256
// with train.optimizer_states int8 (a quarter, plus the absmax), and with optimizer_offload host
// the moments in host memory and one 4Mi-element page of them on the device.
TEST(Config, InfoReportsTheOptimizerStateSaving) {
  MG_REQUIRE_CLI();
  const int64_t P = 1016128;  // tiny's parameters
  const auto bytes = [&](std::vector<std::string> sets) {
    std::vector<std::string> args = {"info", "--config", preset("tiny"), "--json"};
    for (const auto& s : sets) args.push_back("--set"), args.push_back(s);
    const auto r = mgtest::run_cli(args);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return json::parse(r.output)["memory_estimate_bytes"];
  };
  EXPECT_EQ(bytes({})["optimizer_state"], 8 * P);
  EXPECT_EQ(bytes({})["optimizer_host"], 0);
  const auto q = bytes({"train.optimizer_states=int8"});
  EXPECT_EQ(q["optimizer_state"], 2 * P + 8 * ((P + 255) / 256));
  EXPECT_EQ(bytes({})["total"].get<int64_t>() - q["total"].get<int64_t>(), 8 * P - q["optimizer_state"].get<int64_t>());
  const auto h = bytes({"train.optimizer_offload=host"});
  EXPECT_EQ(h["optimizer_host"], 8 * P);
  EXPECT_EQ(h["optimizer_state"], 8 * P);  // tiny fits in one page: the page is all of it
  const auto big = mgtest::run_cli({"info", "--config", preset("production3B_full"), "--json", "--set",
                                    "train.optimizer_states=int8", "--set", "train.optimizer_offload=host"});
  ASSERT_EQ(big.exit_code, 0) << big.output;
  const auto b = json::parse(big.output)["memory_estimate_bytes"];
  EXPECT_EQ(b["optimizer_state"], 2 * (int64_t{1} << 22) + 8 * ((int64_t{1} << 22) / 256));
  EXPECT_EQ(b["optimizer_host"], 2 * int64_t{3274516480} + 8 * ((int64_t{3274516480} + 255) / 256));  // 6.2 GiB instead of 24.4
  const auto text = mgtest::run_cli({"info", "--config", preset("tiny"), "--set", "train.optimizer_states=int8"});
  EXPECT_TRUE(has(text.output, "AdamW moments int8 (2 + 8/256 bytes per trained parameter), in device memory"))
      << text.output;
}

// info --config --ranks N: per-rank memory of data-parallel training. Weights, gradients and
// activations are every rank's; with ZeRO stage 1 the moments are the largest rank's share,
// S = ceil(P / N) rounded up to a multiple of 256 (optim/shard.hpp), worked out by hand for
// tiny (P = 1,016,128): N = 4: ceil = 254,032 -> 993 blocks = 254,208; N = 3: ceil = 338,710
// -> 1,324 blocks = 338,944. fp32 8 bytes per element, int8 2 + 8 per block, paged the same in
// host memory and (tiny fits one page) the same again as the device page.
TEST(Config, InfoReportsMemoryPerRankWithAndWithoutZero) {
  MG_REQUIRE_CLI();
  const int64_t P = 1016128;
  const auto per_rank = [&](int ranks, std::vector<std::string> sets) {
    std::vector<std::string> args = {"info", "--config", preset("tiny"), "--json", "--ranks", std::to_string(ranks)};
    for (const auto& s : sets) args.push_back("--set"), args.push_back(s);
    const auto r = mgtest::run_cli(args);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return json::parse(r.output)["per_rank_memory_bytes"];
  };
  const auto four = per_rank(4, {});
  EXPECT_EQ(four["ranks"], 4);
  const auto& z0 = four["zero_stage_0"];
  const auto& z1 = four["zero_stage_1"];
  EXPECT_EQ(z0["optimizer_state"], 8 * P);
  EXPECT_EQ(z1["optimizer_state"], 8 * 254208);
  for (const char* k : {"weights", "gradients", "activations"}) EXPECT_EQ(z0[k], z1[k]) << k;
  EXPECT_EQ(z0["weights"], 4 * P);
  EXPECT_EQ(z0["total"].get<int64_t>() - z1["total"].get<int64_t>(), 8 * P - 8 * 254208);
  // Every moment setting, both stages.
  std::map<std::string, std::pair<int64_t, int64_t>> m;  // "<states>/<offload>/<stage>" -> (device, host)
  for (const auto& e : four["moments"])
    m[e["optimizer_states"].get<std::string>() + "/" + e["optimizer_offload"].get<std::string>() + "/" +
      std::to_string(e["zero_stage"].get<int>())] = {e["device_bytes"], e["host_bytes"]};
  ASSERT_EQ(m.size(), 8u);
  const int64_t S = 254208, int8_S = 2 * S + 8 * (S / 256), int8_P = 2 * P + 8 * ((P + 255) / 256);
  EXPECT_EQ(m["fp32/none/0"], std::make_pair(8 * P, int64_t{0}));
  EXPECT_EQ(m["fp32/none/1"], std::make_pair(8 * S, int64_t{0}));
  EXPECT_EQ(m["int8/none/0"], std::make_pair(int8_P, int64_t{0}));
  EXPECT_EQ(m["int8/none/1"], std::make_pair(int8_S, int64_t{0}));
  EXPECT_EQ(m["fp32/host/1"], std::make_pair(8 * S, 8 * S));
  EXPECT_EQ(m["int8/host/1"], std::make_pair(int8_S, int8_S));
  EXPECT_EQ(per_rank(3, {})["zero_stage_1"]["optimizer_state"], 8 * 338944);
  // The configured setting is the table's: int8 paged, stage 1 on 3 ranks.
  const auto q = per_rank(3, {"train.optimizer_states=int8", "train.optimizer_offload=host"})["zero_stage_1"];
  EXPECT_EQ(q["optimizer_host"], 2 * 338944 + 8 * 1324);
  // One rank: ZeRO changes nothing.
  const auto one = per_rank(1, {});
  EXPECT_EQ(one["zero_stage_1"], one["zero_stage_0"]);
  const auto text = mgtest::run_cli({"info", "--config", preset("tiny"), "--ranks", "4"});
  EXPECT_TRUE(has(text.output, "per rank, data parallel on 4 ranks")) << text.output;
  EXPECT_TRUE(has(text.output, "zero_stage 1")) << text.output;
  const auto bad = mgtest::run_cli({"info", "--config", preset("tiny"), "--ranks", "0"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(bad.output, "error: info: --ranks must be a rank count >= 1, got 0.\n");
}

TEST(Config, InfoWithABadConfigIsOneClearLine) {
  MG_REQUIRE_CLI();
  const auto bad = write_temp("cli-bad.json", R"({"train": {"stpes": 3}})");
  auto r = mgtest::run_cli({"info", "--config", bad.string()});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(r.output, "error: config: unknown key 'train.stpes' (did you mean 'train.steps'?); "
                      "configs/README.md lists every key. (in " + bad.string() + ")\n");
  r = mgtest::run_cli({"info", "--config", "no/such/config.json"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(has(r.output, "error: config: cannot read 'no/such/config.json': no such file.")) << r.output;
  r = mgtest::run_cli({"info", "--config", preset("tiny"), "--set", "model.dim=-1"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(r.output, "error: config: 'model.dim' must be >= 1, got -1. (from --set model.dim=-1)\n");
}

// The activation model against the device's memory tracker: what one block's forward leaves
// allocated (the tape's saved tensors plus the block output, which stands for the next block's
// input that the model counts) must match the estimate for one block within a few percent.
TEST(Config, ActivationModelMatchesWhatTheForwardKeeps) {
  Context& ctx = mgtest::test_ctx();
  const Config c = parse(R"({"model": {"vocab_size": 64, "dim": 32, "layers": "M",
                                       "moe": {"experts": 4, "top_k": 2, "hidden": 48}}})");
  const int64_t B = 2, L = 96, D = c.model.dim;
  const auto measure = [&](const std::function<Tensor(const Tensor&)>& forward) {
    const Tensor x = mgtest::upload(Shape{B, L, D}, mgtest::randn(B * L * D, 7), false);
    ctx.finish();
    const uint64_t before = ctx.memory().current_total();
    Tensor y = forward(x);
    ctx.finish();
    const uint64_t kept = ctx.memory().current_total() - before;
    autograd::clear_tape();
    return static_cast<double>(kept);
  };
  nn::Init init(3);
  nn::MambaBlock mb(ctx, c.model.mamba_config(), init);
  nn::MoEBlock eb(ctx, c.model.moe_config(), init);
  const double mamba = measure([&](const Tensor& x) { return mb.forward(x); });
  const double moe = measure([&](const Tensor& x) { return eb.forward(x).out; });

  const MemoryEstimate m = estimate_memory(c.model, B, L);  // one Mamba layer
  EXPECT_NEAR(mamba / static_cast<double>(m.mamba_activations + m.scan_states), 1.0, 0.05)
      << "kept " << mamba << " bytes";
  // Jamba's inner norms keep their inputs and rstd too (a large N so that they weigh ~20%).
  const Config j = parse(R"({"model": {"vocab_size": 64, "dim": 32, "layers": "M", "d_state": 64,
                                       "mamba_inner_norms": true, "mamba_proj_bias": true}})");
  nn::MambaBlock jb(ctx, j.model.mamba_config(), init);
  const double jamba = measure([&](const Tensor& x) { return jb.forward(x); });
  const MemoryEstimate mj = estimate_memory(j.model, B, L);
  EXPECT_NEAR(jamba / static_cast<double>(mj.mamba_activations + mj.scan_states), 1.0, 0.05)
      << "kept " << jamba << " bytes";
  const Config e = parse(R"({"model": {"vocab_size": 64, "dim": 32, "layers": "E",
                                       "moe": {"experts": 4, "top_k": 2, "hidden": 48}}})");
  const MemoryEstimate me = estimate_memory(e.model, B, L);  // one MoE layer
  EXPECT_NEAR(moe / static_cast<double>(me.moe_activations), 1.0, 0.05) << "kept " << moe << " bytes";
}
