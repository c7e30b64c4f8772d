// Hugging Face Mamba2 configs: Python's float literals turned into {"__float__": ...} outside
// strings only, hf_float's spellings, transformers' Mamba2Config keys and defaults, the
// time_step_limit spellings real files use, and one clear error for each inconsistent config.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "error_text.hpp"
#include "magellano/io/hf_json.hpp"
#include "magellano/io/hf_mamba2_config.hpp"
#include "temp_dir.hpp"

using mgtest::error_of;
using mgtest::has;
using namespace magellano::io;
using nlohmann::json;

namespace {

// As Mamba2ForCausalLM.save_pretrained writes it for mamba2-130m (Python's json.dumps: a bare Infinity).
const char* kMamba2_130m = R"({
  "architectures": ["Mamba2ForCausalLM"], "bos_token_id": 0, "chunk_size": 256, "conv_kernel": 4,
  "eos_token_id": 0, "expand": 2, "head_dim": 64, "hidden_act": "silu", "hidden_size": 768,
  "initializer_range": 0.1, "layer_norm_epsilon": 1e-05, "model_type": "mamba2", "n_groups": 1,
  "num_heads": 24, "num_hidden_layers": 24, "pad_token_id": 0, "rescale_prenorm_residual": false,
  "residual_in_fp32": true, "rms_norm": true, "state_size": 128, "tie_word_embeddings": true,
  "time_step_floor": 0.0001, "time_step_limit": [0.0, Infinity], "time_step_max": 0.1,
  "time_step_min": 0.001, "time_step_rank": 48, "torch_dtype": "float32", "use_bias": false,
  "use_cache": true, "use_conv_bias": true, "vocab_size": 50288
})";

HfMamba2Config parse_text(const std::string& text) {
  return parse_hf_mamba2_config(json::parse(python_floats_to_json(text)), "x/config.json");
}

}  // namespace

TEST(HfMamba2Config, PythonFloatLiteralsOutsideStringsOnly) {
  EXPECT_EQ(python_floats_to_json(R"([0.0, Infinity, -Infinity, NaN])"),
            R"([0.0, {"__float__": "Infinity"}, {"__float__": "-Infinity"}, {"__float__": "NaN"}])");
  // Inside strings (escaped quotes included) nothing changes; valid JSON passes through as it is.
  const std::string s = R"({"a": "Infinity \"NaN\" -Infinity", "b\\": "x", "c": [1e5, -2, true, null]})";
  EXPECT_EQ(python_floats_to_json(s), s);
  EXPECT_EQ(json::parse(python_floats_to_json(R"({"k\"Infinity": Infinity})"))["k\"Infinity"]["__float__"], "Infinity");
  EXPECT_TRUE(std::isinf(*hf_float(json::parse(R"({"__float__": "Infinity"})"))));
  EXPECT_LT(*hf_float(json::parse(R"({"__float__": "-Infinity"})")), 0);
  EXPECT_TRUE(std::isnan(*hf_float(json::parse(R"({"__float__": "NaN"})"))));
  EXPECT_EQ(*hf_float(json(0.25)), 0.25);
  EXPECT_FALSE(hf_float(json("Infinity")).has_value());
  EXPECT_FALSE(hf_float(json::parse(R"({"__float__": "big"})")).has_value());
}

TEST(HfMamba2Config, ParsesTransformersConfig) {
  const auto c = parse_text(kMamba2_130m);
  EXPECT_EQ(c.vocab_size, 50288);
  EXPECT_EQ(c.hidden_size, 768);
  EXPECT_EQ(c.num_hidden_layers, 24);
  EXPECT_EQ(c.num_heads, 24);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.n_groups, 1);
  EXPECT_EQ(c.state_size, 128);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.time_step_lo, 0.0);
  EXPECT_TRUE(std::isinf(c.time_step_hi));
  // The other spellings of time_step_limit, and its absence: the default (0, inf).
  for (const char* limit : {R"([0.0, {"__float__": "Infinity"}])", R"("absent")"}) {
    json j = json::parse(python_floats_to_json(kMamba2_130m));
    if (std::string(limit) == "\"absent\"") j.erase("time_step_limit");
    else j["time_step_limit"] = json::parse(limit);
    const auto d = parse_hf_mamba2_config(j);
    EXPECT_EQ(d.time_step_lo, 0.0) << limit;
    EXPECT_TRUE(std::isinf(d.time_step_hi)) << limit;
  }
  // transformers' defaults for absent keys; Mamba2 defaults to an untied head.
  const auto d = parse_hf_mamba2_config(json::parse(R"({"model_type": "mamba2"})"));
  EXPECT_EQ(d.hidden_size, 4096);
  EXPECT_EQ(d.num_heads, 128);
  EXPECT_EQ(d.n_groups, 8);
  EXPECT_FALSE(d.tie_word_embeddings);
  EXPECT_EQ(parse_text(R"({"model_type": "mamba2", "time_step_limit": [0.001, 0.2]})").time_step_hi, 0.2);
}

TEST(HfMamba2Config, ReadsFilesPythonWrote) {
  mgtest::TempDir d;
  std::ofstream(d.path() / "config.json") << kMamba2_130m;
  EXPECT_TRUE(is_hf_mamba2_dir(d.path()));
  EXPECT_EQ(hf_model_type(d.path()), "mamba2");
  EXPECT_EQ(read_hf_mamba2_config(d.path()).num_heads, 24);
  EXPECT_EQ(read_hf_json(d.path() / "config.json", "config")["time_step_limit"][1]["__float__"], "Infinity");
  std::ofstream(d.path() / "config.json") << R"({"model_type": "mamba2", )";
  EXPECT_FALSE(is_hf_mamba2_dir(d.path()));
  EXPECT_TRUE(has(error_of([&] { read_hf_mamba2_config(d.path()); }), "is not valid JSON"));
  EXPECT_FALSE(is_hf_mamba2_dir(d.path() / "absent"));
}

TEST(HfMamba2Config, InconsistentConfigsAreOneClearError) {
  EXPECT_EQ(error_of([] { parse_text(R"({"model_type": "mamba2", "hidden_size": 64, "num_heads": 3, "head_dim": 32})"); }),
            "Hugging Face config x/config.json: \"num_heads\" x \"head_dim\" = 3 x 32 = 96 must equal \"expand\" x "
            "\"hidden_size\" = 2 x 64 = 128.");
  EXPECT_TRUE(has(error_of([] { parse_text(R"({"model_type": "mamba2", "hidden_size": 64, "num_heads": 4,
                                                "head_dim": 32, "n_groups": 3})"); }),
                  "\"n_groups\" 3 does not divide \"num_heads\" 4."));
  EXPECT_TRUE(has(error_of([] { parse_text(R"({"model_type": "mamba"})"); }), "\"model_type\" is \"mamba\"; expected \"mamba2\""));
  EXPECT_TRUE(has(error_of([] { parse_text(R"({"model_type": "mamba2", "time_step_limit": [0.0, "inf"]})"); }),
                  "\"time_step_limit\" is [0.0,\"inf\"]; expected [lo, hi] with 0 <= lo < hi"));
  EXPECT_TRUE(has(error_of([] { parse_text(R"({"model_type": "mamba2", "time_step_limit": [NaN, 1.0]})"); }),
                  "\"time_step_limit\""));
  EXPECT_TRUE(has(error_of([] { parse_text(R"({"model_type": "mamba2", "state_size": 0})"); }),
                  "\"state_size\" is 0; expected a positive integer"));
  EXPECT_TRUE(has(error_of([] { parse_text(R"({"model_type": "mamba2", "hidden_act": "gelu"})"); }), "runs \"silu\" only"));
  EXPECT_TRUE(has(error_of([] { parse_text(R"({"model_type": "mamba2", "use_bias": 1})"); }), "expected true or false"));
  // Sizes past 2^31 are refused before any product of two of them is formed (no int64 overflow).
  EXPECT_TRUE(has(error_of([] { parse_text(R"({"model_type": "mamba2", "num_heads": 4611686018427387904})"); }),
                  "\"num_heads\" is 4611686018427387904; expected a positive integer below 2^31"));
  // A floor of 0 is a valid initialisation setting (no floor); a negative one is not.
  EXPECT_EQ(parse_text(R"({"model_type": "mamba2", "time_step_floor": 0.0})").time_step_floor, 0.0);
  EXPECT_TRUE(has(error_of([] { parse_text(R"({"model_type": "mamba2", "time_step_floor": -1e-4})"); }),
                  "expected a number >= 0"));
}
