// The config.json of Hugging Face hybrids (GraniteMoeHybridConfig, JambaConfig): keys, defaults,
// old and new spellings, the training config each becomes (layer letters, sections,
// multipliers, routing), and every config Magellano cannot run as one clear line.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "error_text.hpp"
#include "magellano/io/hf_granite_config.hpp"
#include "magellano/io/hf_jamba_config.hpp"
#include "magellano/io/json_file.hpp"
#include "magellano/train/checkpoint.hpp"
#include "magellano/train/hf_layout.hpp"
#include "temp_dir.hpp"

using mgtest::expect_error;
using namespace magellano;
using nlohmann::json;

namespace {

// A granite-4.0-h-tiny config.json with its sizes shrunk (the keys and spellings as published).
json granite_json() {
  return json::parse(R"({
    "architectures": ["GraniteMoeHybridForCausalLM"], "model_type": "granitemoehybrid",
    "attention_bias": false, "attention_dropout": 0.0, "attention_multiplier": 0.0078125,
    "bos_token_id": 100257, "eos_token_id": 100257, "pad_token_id": 100256,
    "embedding_multiplier": 12, "hidden_act": "silu", "hidden_size": 64, "init_method": "mup",
    "initializer_range": 0.1, "intermediate_size": 32,
    "layer_types": ["mamba", "mamba", "attention", "mamba"],
    "logits_scaling": 6, "mamba_chunk_size": 256, "mamba_conv_bias": true, "mamba_d_conv": 4,
    "mamba_d_head": 32, "mamba_d_state": 16, "mamba_expand": 2, "mamba_n_groups": 1, "mamba_n_heads": 4,
    "mamba_proj_bias": false, "max_position_embeddings": 131072, "normalization_function": "rmsnorm",
    "num_attention_heads": 4, "num_experts_per_tok": 2, "num_hidden_layers": 4, "num_key_value_heads": 2,
    "num_local_experts": 4, "output_router_logits": false, "position_embedding_type": "nope",
    "residual_multiplier": 0.22, "rms_norm_eps": 1e-05, "rope_scaling": null, "rope_theta": 10000,
    "router_aux_loss_coef": 0.0, "shared_intermediate_size": 48, "tie_word_embeddings": true,
    "torch_dtype": "bfloat16", "transformers_version": "4.56.0", "use_cache": true, "vocab_size": 1000})");
}

// A Jamba-v0.1 config.json shrunk.
json jamba_json() {
  return json::parse(R"({
    "architectures": ["JambaForCausalLM"], "model_type": "jamba", "attention_dropout": 0.0,
    "attn_layer_offset": 4, "attn_layer_period": 8, "bos_token_id": 1, "eos_token_id": 2,
    "expert_layer_offset": 1, "expert_layer_period": 2, "hidden_act": "silu", "hidden_size": 64,
    "initializer_range": 0.02, "intermediate_size": 96, "mamba_conv_bias": true, "mamba_d_conv": 4,
    "mamba_d_state": 16, "mamba_dt_rank": 256, "mamba_expand": 2, "mamba_proj_bias": false,
    "max_position_embeddings": 262144, "num_attention_heads": 4, "num_experts": 4, "num_experts_per_tok": 2,
    "num_hidden_layers": 8, "num_key_value_heads": 2, "num_logits_to_keep": 1, "output_router_logits": false,
    "pad_token_id": 0, "rms_norm_eps": 1e-06, "router_aux_loss_coef": 0.001, "sliding_window": null,
    "tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.40.0.dev0",
    "use_cache": true, "use_mamba_kernels": true, "vocab_size": 1000})");
}

train::Config hybrid_config(const json& j) {
  mgtest::TempDir dir;
  io::write_json_atomically(dir.path() / "config.json", j);
  return train::read_hf_hybrid(dir.path()).config;
}

}  // namespace

TEST(HfGraniteConfig, PublishedKeysAndTheModelTheyGive) {
  const io::HfGraniteHybridConfig c = io::parse_hf_granite_config(granite_json());
  EXPECT_EQ(c.attention_layers, (std::vector<bool>{false, false, true, false}));
  EXPECT_FALSE(c.rope);  // "nope"
  EXPECT_EQ(c.mamba_d_head, 32);
  EXPECT_EQ(c.num_key_value_heads, 2);
  const train::Config t = hybrid_config(granite_json());
  const auto& m = t.model;
  EXPECT_EQ(m.layers, "SESEAESE");  // each layer: its mixer, then its MoE + shared MLP
  EXPECT_EQ(m.attention.heads, 4);
  EXPECT_EQ(m.attention.kv_heads, 2);
  EXPECT_EQ(m.attention.rope_theta, 0.0);
  EXPECT_DOUBLE_EQ(m.attention.scale, 0.0078125);
  EXPECT_DOUBLE_EQ(m.embedding_multiplier, 12.0);
  EXPECT_DOUBLE_EQ(m.residual_multiplier, 0.22);
  EXPECT_DOUBLE_EQ(m.logits_scaling, 6.0);
  EXPECT_EQ(m.mamba2.head_dim, 32);
  EXPECT_EQ(m.mamba2.d_state, 16);
  EXPECT_EQ(m.moe.experts, 4);
  EXPECT_EQ(m.moe.hidden, 32);
  EXPECT_EQ(m.moe.shared_expert_hidden, 48);
  EXPECT_EQ(m.moe.router, nn::MoERouter::topk_softmax);
  EXPECT_TRUE(m.tie_embeddings);
  EXPECT_DOUBLE_EQ(m.norm_eps, 1e-5);
}

TEST(HfGraniteConfig, SpellingsAndDefaults) {
  json j = granite_json();
  j.erase("layer_types");
  j["layers_block_type"] = {"attention", "mamba", "mamba", "mamba"};  // the old spelling
  EXPECT_EQ(hybrid_config(j).model.layers, "AESESESE");
  j.erase("layers_block_type");  // absent: every layer Mamba
  EXPECT_EQ(hybrid_config(j).model.layers, "SESESESE");
  j["mamba_d_head"] = "auto";  // = expand * hidden / heads = 128 / 4
  EXPECT_EQ(io::parse_hf_granite_config(j).mamba_d_head, 32);
  j["num_local_experts"] = 0;  // dense: the shared MLP alone
  EXPECT_EQ(hybrid_config(j).model.layers, "SFSFSFSF");
  j["position_embedding_type"] = "rope";
  j["rope_theta"] = 1e6;
  EXPECT_EQ(hybrid_config(j).model.attention.rope_theta, 1e6);
  j["position_embedding_type"] = nullptr;
  EXPECT_EQ(hybrid_config(j).model.attention.rope_theta, 0.0);
  j.erase("num_key_value_heads");  // defaults to the heads
  EXPECT_EQ(io::parse_hf_granite_config(j).num_key_value_heads, 4);
}

TEST(HfGraniteConfig, WhatWeDoNotRunIsOneLine) {
  auto bad = [](const std::function<void(json&)>& edit, const std::string& fragment) {
    json j = granite_json();
    edit(j);
    expect_error([&] { io::parse_hf_granite_config(j, "cfg.json"); }, fragment);
  };
  bad([](json& j) { j["layer_types"][1] = "mlp"; }, "\"layer_types\"[1] is \"mlp\", an unknown layer type");
  bad([](json& j) { j["layer_types"].erase(0); }, "\"layer_types\" lists 3 layers; \"num_hidden_layers\" is 4");
  bad([](json& j) { j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}}; }, "scaled rotary positions are not supported");
  bad([](json& j) { j["attention_bias"] = true; }, "no projection biases");
  bad([](json& j) { j["position_embedding_type"] = "alibi"; }, "expected null, \"nope\" or \"rope\"");
  bad([](json& j) { j["num_key_value_heads"] = 3; }, "\"num_key_value_heads\" 3 does not divide \"num_attention_heads\" 4");
  bad([](json& j) { j["num_attention_heads"] = 5; }, "\"num_attention_heads\" 5 does not divide \"hidden_size\" 64");
  bad([](json& j) { j["mamba_d_head"] = 48; }, "must equal \"mamba_expand\" x \"hidden_size\" = 128");
  bad([](json& j) { j["model_type"] = "granite"; }, "expected \"granitemoehybrid\"");
  bad([](json& j) { j["hidden_act"] = "gelu"; }, "runs \"silu\" only");
}

TEST(HfJambaConfig, PeriodsAndTheModelTheyGive) {
  const io::HfJambaConfig c = io::parse_hf_jamba_config(jamba_json());
  EXPECT_EQ(c.attention_layers, (std::vector<bool>{false, false, false, false, true, false, false, false}));
  EXPECT_EQ(c.expert_layers, (std::vector<bool>{false, true, false, true, false, true, false, true}));
  const auto m = hybrid_config(jamba_json()).model;
  EXPECT_EQ(m.layers, "MFMEMFMEAFMEMFME");
  EXPECT_EQ(m.dt_rank, 256);
  EXPECT_TRUE(m.mamba_inner_norms);
  EXPECT_EQ(m.attention.rope_theta, 0.0);  // NoPE
  EXPECT_EQ(m.attention.scale, 0.0);       // 1/sqrt(d)
  EXPECT_EQ(m.moe.router, nn::MoERouter::softmax_topk);
  EXPECT_FALSE(m.moe.normalize_top_k);
  EXPECT_EQ(m.mlp.hidden, 96);
  EXPECT_FALSE(m.tie_embeddings);
  json j = jamba_json();
  j["mamba_dt_rank"] = "auto";  // ceil(64 / 16)
  EXPECT_EQ(hybrid_config(j).model.dt_rank, 4);
  j["num_experts"] = 1;  // no sparse layers at all
  EXPECT_EQ(hybrid_config(j).model.layers, "MFMFMFMFAFMFMFMF");
}

TEST(HfJambaConfig, WhatWeDoNotRunIsOneLine) {
  auto bad = [](const std::function<void(json&)>& edit, const std::string& fragment) {
    json j = jamba_json();
    edit(j);
    expect_error([&] { io::parse_hf_jamba_config(j, "cfg.json"); }, fragment);
  };
  bad([](json& j) { j["sliding_window"] = 4096; }, "sliding-window attention is not supported");
  bad([](json& j) { j["attn_layer_offset"] = 8; }, "\"attn_layer_offset\" 8 must be below \"attn_layer_period\" 8");
  bad([](json& j) { j["expert_layer_offset"] = 2; }, "must be below \"expert_layer_period\" 2");
  bad([](json& j) { j["num_key_value_heads"] = 3; }, "does not divide \"num_attention_heads\" 4");
  bad([](json& j) { j["hidden_size"] = "64"; }, "\"hidden_size\" is \"64\"; expected a positive integer");
}

TEST(HfGraniteConfig, InitFromRefusesAConfigThatComputesSomethingElse) {
  // --init-from a NoPE Granite folder with a config of rotary positions (or another score scale,
  // multiplier or routing): the weights would load and silently compute something else.
  const train::Config source = hybrid_config(granite_json());
  train::Config run = source;
  EXPECT_NO_THROW(train::check_same_function(run.model, source.model, "granite"));
  run.model.attention.rope_theta = 10000;
  expect_error([&] { train::check_same_function(run.model, source.model, "granite"); },
               "granite: its attention has no rotary positions (NoPE), the config's 'model.attention.rope_theta' gives "
               "rope_theta 10000; set it to 0");
  run = source;
  run.model.attention.scale = 0;  // 1/sqrt(16) instead of 0.0078125
  expect_error([&] { train::check_same_function(run.model, source.model, "granite"); },
               "its attention scores are scaled by 0.0078125, the config's by 0.25");
  run = source;
  run.model.residual_multiplier = 1;
  expect_error([&] { train::check_same_function(run.model, source.model, "granite"); },
               "its residual_multiplier is 0.22, the config's 'model.residual_multiplier' 1");
  run = source;
  run.model.moe.router = nn::MoERouter::softmax_topk;
  expect_error([&] { train::check_same_function(run.model, source.model, "granite"); },
               "its MoE routing is topk_softmax, the config's softmax_topk");
}
