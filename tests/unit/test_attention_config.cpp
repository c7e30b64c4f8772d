// Attention ('A') and dense MLP ('F') blocks in the training config: the model.attention section
// (defaults, round trip, the nn config it gives), configs the layer cannot run as one clear error
// naming the key (also through `magellano info`), the glm presets' sizes, parameter and LoRA
// counts against the real layers, and the activation model against what one attention block's
// forward keeps on the device.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "error_text.hpp"
#include "harness.hpp"
#include "magellano/nn/model.hpp"
#include "magellano/train/checkpoint.hpp"
#include "magellano/train/config.hpp"
#include "magellano/train/model_size.hpp"
#include "project_files.hpp"

using mgtest::error_of;
using mgtest::has;
using namespace magellano;
using namespace magellano::train;
using nlohmann::json;

namespace {

std::string preset(const std::string& name) { return mgtest::project_file("configs/" + name + ".json").string(); }
Config parse(const std::string& text) { return Config::from_json(json::parse(text)); }

}  // namespace

TEST(AttentionConfig, SectionDefaultsAndRoundTrip) {
  const Config d = Config::defaults();
  EXPECT_EQ(d.model.attention.heads, 8);
  EXPECT_EQ(d.model.attention.kv_heads, 0);
  EXPECT_EQ(d.model.attention.rope_theta, 10000.0);
  EXPECT_EQ(d.model.embedding_multiplier, 1.0);
  const Config c = parse(R"({"model": {"dim": 64, "layers": "MAF", "attention": {"heads": 4, "kv_heads": 2,
                                       "rope_theta": 1e6, "scale": 0.1}, "residual_multiplier": 0.5}})");
  EXPECT_EQ(Config::from_json(c.to_json()), c);
  const nn::AttentionConfig a = c.model.attention_config();
  EXPECT_EQ(a.width(), 16);
  EXPECT_EQ(a.kv(), 2);
  EXPECT_FLOAT_EQ(a.score_scale(), 0.1f);
  EXPECT_EQ(c.model.num_attention(), 1);
  EXPECT_EQ(c.model.num_mlp(), 1);
  EXPECT_EQ(model_spec(c.model).residual_multiplier, 0.5f);
}

TEST(AttentionConfig, WhatTheLayerCannotRunIsOneClearError) {
  EXPECT_EQ(error_of([] { parse(R"({"model": {"dim": 60, "layers": "A", "attention": {"heads": 8}}})"); }),
            "config: 'model.attention.heads' (8) must divide 'model.dim' (60); choose a divisor of it or set "
            "'model.attention.head_dim'.");
  EXPECT_EQ(error_of([] { parse(R"({"model": {"dim": 64, "layers": "A", "attention": {"heads": 4, "kv_heads": 3}}})"); }),
            "config: 'model.attention.kv_heads' (3) must divide 'model.attention.heads' (4); choose a divisor of 4.");
  EXPECT_TRUE(has(error_of([] { parse(R"({"model": {"dim": 60, "layers": "A", "attention": {"heads": 6}}})"); }),
                  "head width 10 is not one the attention kernels run (a multiple of 8 from 8 to 256)"));
  EXPECT_TRUE(has(error_of([] { parse(R"({"model": {"attention": {"rope_theta": -1}}})"); }),
                  "'model.attention.rope_theta' must be"));
  EXPECT_TRUE(has(error_of([] { parse(R"({"model": {"logits_scaling": 0}})"); }), "'model.logits_scaling' must be"));
  EXPECT_TRUE(has(error_of([] { parse(R"({"model": {"attention": {"kv": 2}}})"); }), "unknown key 'model.attention.kv'"));
  // The section is not checked without 'A' blocks.
  EXPECT_NO_THROW(parse(R"({"model": {"dim": 60, "layers": "M", "attention": {"heads": 8}}})"));
}

TEST(AttentionConfig, InfoWithABadAttentionConfigIsOneClearLine) {
  MG_REQUIRE_CLI();
  const auto r = mgtest::run_cli({"info", "--config", preset("glm_tiny"), "--set", "model.attention.kv_heads=3"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(r.output, "error: config: 'model.attention.kv_heads' (3) must divide 'model.attention.heads' (4); choose a "
                      "divisor of 4. (from --set model.attention.kv_heads=3)\n");
}

TEST(AttentionConfig, GlmPresetsAreTwoToOne) {
  for (const auto& [name, mamba, exact] :
       {std::tuple{"glm_tiny", int64_t{8}, int64_t{1426496}}, std::tuple{"glm_small", int64_t{16}, int64_t{158802944}}}) {
    SCOPED_TRACE(name);
    const Config c = load_config(preset(name));
    const ParamCounts p = count_params(c.model);
    EXPECT_EQ(p.total, exact);
    EXPECT_EQ(p.mamba_layers, mamba);
    EXPECT_EQ(p.attention_layers, mamba / 2);
    EXPECT_EQ(p.moe_layers, mamba / 2);
    EXPECT_NE(c.model.attention.rope_theta, 0.0);
    EXPECT_LT(c.model.attention.kv_heads, c.model.attention.heads);
  }
}

// The analytical counts equal what the model allocates: every block kind, GQA and explicit head
// widths, an untied head, a shared expert, Jamba's Mamba options; LoRA on attention, MLP and
// shared-expert targets.
TEST(AttentionConfig, ParamAndLoRACountsMatchTheModel) {
  Context& ctx = mgtest::test_ctx();
  for (const char* text :
       {R"({"model": {"vocab_size": 97, "dim": 40, "layers": "AMSEF", "tie_embeddings": false, "mamba_inner_norms": true,
                      "attention": {"heads": 5, "kv_heads": 1, "head_dim": 16},
                      "mamba2": {"head_dim": 10, "d_state": 6},
                      "moe": {"experts": 3, "top_k": 2, "hidden": 24, "shared_expert_hidden": 12}, "mlp": {"hidden": 20}}})",
        R"({"model": {"vocab_size": 50, "dim": 32, "layers": "FAEA", "attention": {"heads": 4, "kv_heads": 2},
                      "moe": {"experts": 2, "top_k": 1, "hidden": 16, "shared_expert_hidden": 8}},
            "lora": {"rank": 3, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "mlp", "shared_expert"]}})"}) {
    const Config c = parse(text);
    const ParamCounts p = count_params(c.model);
    nn::Model model(ctx, model_spec(c), 1);
    EXPECT_EQ(p.total, model.num_parameters()) << text;
    nn::Init init(1);
    EXPECT_EQ(p.attention_block, nn::AttentionBlock(ctx, c.model.attention_config(), init).num_parameters());
    int64_t lora = 0, linear = 0;
    for (const auto& prm : model.lora_parameters()) lora += prm.tensor.numel();
    for (const auto& l : model.linears())
      if (l.path != "lm_head") linear += l.linear->in_features() * l.linear->out_features();
    EXPECT_EQ(count_lora(c).lora, lora) << text;
    EXPECT_EQ(count_lora(c).linear_weights, linear) << text;
  }
}

// What one attention block's forward leaves allocated (the tape's saved tensors plus the block
// output, which stands for the next block's input that the model counts) equals the estimate byte
// for byte, with rotary positions and without.
TEST(AttentionConfig, ActivationModelMatchesWhatTheForwardKeeps) {
  Context& ctx = mgtest::test_ctx();
  for (const char* text : {R"({"model": {"dim": 32, "layers": "A", "attention": {"heads": 4, "kv_heads": 2}}})",
                           R"({"model": {"dim": 48, "layers": "A", "attention": {"heads": 3, "rope_theta": 0}}})"}) {
    const Config c = parse(text);
    const int64_t B = 2, L = 40, D = c.model.dim;
    nn::Init init(3);
    nn::AttentionBlock block(ctx, c.model.attention_config(), init);
    const Tensor x = mgtest::upload(Shape{B, L, D}, mgtest::randn(B * L * D, 7), false);
    {
      autograd::NoGradScope warm;  // rope's per-context angle table is made once, not per layer
      (void)block.forward(x);
    }
    ctx.finish();
    const uint64_t before = ctx.memory().current_total();
    Tensor y = block.forward(x);
    ctx.finish();
    const int64_t kept = int64_t(ctx.memory().current_total() - before);
    autograd::clear_tape();
    EXPECT_EQ(kept, estimate_memory(c.model, B, L).attention_activations) << text;
  }
}
