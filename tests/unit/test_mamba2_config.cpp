// Mamba2 ('S') blocks in the training config: the layer letter and list name, the model.mamba2
// section (time_step_limit's spellings, the round trip, the nn config it gives), configs the
// layer cannot run as one clear error naming the key (also through `magellano info`), the
// Mamba2 presets' sizes, parameter and LoRA counts against the real layers, and the activation
// model against what one block's forward keeps on the device.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
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

TEST(Mamba2Config, LayerLetterAndListName) {
  using K = LayerKind;
  EXPECT_EQ(parse_layer_pattern("MSE"), (std::vector<K>{K::mamba, K::mamba2, K::moe}));
  EXPECT_EQ(layer_string(parse_layer_pattern("(SSSE)x2S")), "SSSESSSES");
  EXPECT_EQ(layer_string(parse_layer_list(json::parse(R"(["mamba2", "S", "moe", "mamba"])"))), "SSEM");
  const Config c = parse(R"({"model": {"dim": 64, "layers": ["mamba", "mamba2", "moe", "mamba2"]}})");
  EXPECT_EQ(c.model.layers, "MSES");
  EXPECT_EQ(c.model.num_mamba(), 1);
  EXPECT_EQ(c.model.num_mamba2(), 2);
  EXPECT_EQ(c.model.num_moe(), 1);
  EXPECT_EQ(model_spec(c.model).layers, "MSES");
  EXPECT_TRUE(has(error_of([] { parse_layer_pattern("MSs", "'model.layers'"); }),
                  "unexpected 's' (use 'M' = Mamba, 'S' = Mamba2, 'A' = attention, 'E' = MoE, 'F' = MLP"));
}

TEST(Mamba2Config, SectionDefaultsSpellingsAndRoundTrip) {
  const Config d = Config::defaults();
  const Mamba2Section& s = d.model.mamba2;
  EXPECT_EQ(s.head_dim, 64);
  EXPECT_EQ(s.n_groups, 1);
  EXPECT_EQ(s.d_state, 128);
  EXPECT_EQ(s.chunk_size, 0);
  EXPECT_EQ(s.dt_lo, 0.0);
  EXPECT_TRUE(std::isinf(s.dt_hi));
  EXPECT_EQ(d.to_json()["model"]["mamba2"]["time_step_limit"], json::parse("[0.0, null]"));
  // hi: a number, null or "inf"; what to_json writes reads back as the same config.
  for (const char* limit : {"[0.001, null]", "[0.001, \"inf\"]"}) {
    const Config c = parse(std::string(R"({"model": {"mamba2": {"time_step_limit": )") + limit + "}}}");
    EXPECT_EQ(c.model.mamba2.dt_lo, 0.001) << limit;
    EXPECT_TRUE(std::isinf(c.model.mamba2.dt_hi)) << limit;
    EXPECT_EQ(Config::from_json(json::parse(c.to_json().dump())), c) << limit;
  }
  const Config c = load_config(preset("tiny_mamba2"), {"model.mamba2.time_step_limit=[0.0, 0.5]",
                                                       "model.mamba2.bias=true", "model.mamba2.chunk_size=32"});
  EXPECT_EQ(c.model.mamba2.dt_hi, 0.5);
  EXPECT_EQ(Config::from_json(c.to_json()), c);
  const nn::Mamba2Config n = c.model.mamba2_config();
  EXPECT_EQ(n.dim, 64);
  EXPECT_EQ(n.head_dim, 32);
  EXPECT_EQ(n.heads(), 4);
  EXPECT_EQ(n.d_state, 32);
  EXPECT_EQ(n.chunk, 32);
  EXPECT_EQ(n.dt_hi, 0.5f);
  EXPECT_TRUE(n.bias);
  EXPECT_TRUE(n.conv_bias);
  EXPECT_EQ(n.num_layers, 8);
  EXPECT_EQ(model_spec(c.model).mamba2.d_state, 32);
}

TEST(Mamba2Config, ConfigsTheLayerCannotRunAreOneClearError) {
  EXPECT_EQ(error_of([] { parse(R"({"model": {"dim": 100, "layers": "SE"}})"); }),
            "config: 'model.mamba2.head_dim' (64) must divide the Mamba2 inner width 'model.mamba2.expand' x "
            "'model.dim' = 2 x 100 = 200; choose a divisor of it.");
  EXPECT_NO_THROW(parse(R"({"model": {"dim": 100, "layers": "ME"}})"));  // no 'S' block: the section is unused
  EXPECT_EQ(error_of([] { parse(R"({"model": {"dim": 64, "layers": "S", "mamba2": {"head_dim": 32, "n_groups": 3}}})"); }),
            "config: 'model.mamba2.n_groups' (3) must divide the 4 Mamba2 heads (inner width 128 / head_dim 32); "
            "choose a divisor of 4.");
  EXPECT_EQ(error_of([] { parse(R"({"model": {"mamba2": {"time_step_limit": [0.1, 0.05]}}})"); }),
            "config: 'model.mamba2.time_step_limit' must be [lo, hi] with 0 <= lo < hi, got [0.1,0.05].");
  EXPECT_EQ(error_of([] { parse(R"({"model": {"mamba2": {"time_step_limit": [0.1]}}})"); }),
            "config: 'model.mamba2.time_step_limit' must be a list [lo, hi] of numbers (hi null or \"inf\" for no "
            "upper limit), got [0.1].");
  EXPECT_TRUE(has(error_of([] { parse(R"({"model": {"mamba2": {"time_step_limit": "fast"}}})"); }),
                  "got a string (\"fast\")"));
  EXPECT_TRUE(has(error_of([] { parse(R"({"model": {"mamba2": {"time_step_limit": [-1, null]}}})"); }),
                  "must be [lo, hi] with 0 <= lo < hi, got [-1.0,null]"));
  EXPECT_EQ(error_of([] { parse(R"({"model": {"dim": 64, "layers": "S", "mamba2": {"time_step_min": 0.5}}})"); }),
            "config: 'model.mamba2.time_step_min' (0.5) must be <= 'model.mamba2.time_step_max' (0.1).");
  EXPECT_TRUE(has(error_of([] { parse(R"({"model": {"mamba2": {"chunk_size": -1}}})"); }),
                  "'model.mamba2.chunk_size' must be in [0, 4096], got -1"));
  EXPECT_TRUE(has(error_of([] { parse(R"({"model": {"mamba2": {"heads": 4}}})"); }), "unknown key 'model.mamba2.heads'"));
}

TEST(Mamba2Config, InfoWithABadMamba2ConfigIsOneClearLine) {
  MG_REQUIRE_CLI();
  const auto r = mgtest::run_cli({"info", "--config", preset("tiny_mamba2"), "--set", "model.mamba2.head_dim=48"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(r.output, "error: config: 'model.mamba2.head_dim' (48) must divide the Mamba2 inner width "
                      "'model.mamba2.expand' x 'model.dim' = 2 x 64 = 128; choose a divisor of it. (from --set "
                      "model.mamba2.head_dim=48)\n");
}

// phase1_mamba2 is phase1 with Mamba2 blocks in place of the Mamba blocks (same width,
// vocabulary, MoE blocks and training budget), ~77M parameters; tiny_mamba2 likewise for tiny.
TEST(Mamba2Config, PresetsHitTheirSizes) {
  for (const auto& [name, mamba1, exact] : {std::tuple{"phase1_mamba2", "phase1", int64_t{77138660}},
                                            std::tuple{"tiny_mamba2", "tiny", int64_t{1000456}}}) {
    SCOPED_TRACE(name);
    const Config c = load_config(preset(name)), m1 = load_config(preset(mamba1));
    const ParamCounts p = count_params(c.model), p1 = count_params(m1.model);
    EXPECT_EQ(p.total, exact);
    EXPECT_NEAR(double(p.total) / double(p1.total), 1.0, 0.02);
    EXPECT_EQ(p.mamba_layers, 0);
    EXPECT_EQ(p.mamba2_layers, p1.mamba_layers);
    EXPECT_EQ(p.moe_layers, p1.moe_layers);
    EXPECT_EQ(c.model.dim, m1.model.dim);
    EXPECT_EQ(c.model.vocab_size, m1.model.vocab_size);
    EXPECT_EQ(c.model.moe, m1.model.moe);
    EXPECT_EQ(c.train, m1.train);
    EXPECT_EQ(c.data, m1.data);
  }
  const Config c = load_config(preset("phase1_mamba2"));
  EXPECT_NEAR(count_params(c.model).total / 77e6, 1.0, 0.01);
  EXPECT_EQ(c.model.mamba2.head_dim, 64);
  EXPECT_EQ(c.model.mamba2.d_state, 128);
  EXPECT_EQ(c.model.mamba2.n_groups, 1);
  EXPECT_EQ(count_params(c.model).mamba2_block, 1332330);
}

// The analytical counts equal what the model allocates: odd sizes, biases on and off, mixed
// stacks, an untied head; with LoRA on in_proj / out_proj, the adapters and the Linear weights.
TEST(Mamba2Config, ParamAndLoRACountsMatchTheModel) {
  Context& ctx = mgtest::test_ctx();
  for (const char* text :
       {R"({"model": {"vocab_size": 97, "dim": 40, "layers": "SMSE", "tie_embeddings": false,
                      "mamba2": {"head_dim": 10, "n_groups": 2, "d_state": 6, "d_conv": 3, "bias": true, "conv_bias": false},
                      "moe": {"experts": 3, "top_k": 2, "hidden": 24}}})",
        R"({"model": {"vocab_size": 50, "dim": 24, "layers": "ES", "mamba2": {"head_dim": 16, "n_groups": 3, "d_state": 5, "expand": 4},
                      "moe": {"experts": 2, "top_k": 1, "hidden": 16}},
            "lora": {"rank": 3, "target_modules": ["in_proj", "out_proj"]}})"}) {
    const Config c = parse(text);
    const ParamCounts p = count_params(c.model);
    nn::Model model(ctx, model_spec(c), 1);
    EXPECT_EQ(p.total, model.num_parameters());
    nn::Init init(1);
    EXPECT_EQ(p.mamba2_block, nn::Mamba2Block(ctx, c.model.mamba2_config(), init).num_parameters());
    int64_t lora = 0, linear = 0;
    for (const auto& prm : model.lora_parameters()) lora += prm.tensor.numel();
    for (const auto& l : model.linears())
      if (l.path != "lm_head") linear += l.linear->in_features() * l.linear->out_features();
    EXPECT_EQ(count_lora(c).lora, lora);
    EXPECT_EQ(count_lora(c).linear_weights, linear);
    if (c.lora.enabled()) EXPECT_EQ(count_params(c).trainable, lora);
  }
}

// What one Mamba2 block's forward leaves allocated (the tape's saved tensors plus the block
// output, which stands for the next block's input that the model counts) equals the estimate
// byte for byte, at the default chunk and at a chunk of 16 (L = 96 = 6 chunks).
TEST(Mamba2Config, ActivationModelMatchesWhatTheForwardKeeps) {
  Context& ctx = mgtest::test_ctx();
  for (const char* text : {R"({"model": {"dim": 32, "layers": "S", "mamba2": {"head_dim": 8, "n_groups": 2, "d_state": 16}}})",
                           R"({"model": {"dim": 24, "layers": "S", "mamba2": {"head_dim": 12, "d_state": 8, "chunk_size": 16,
                                         "bias": true}}})"}) {
    const Config c = parse(text);
    const int64_t B = 2, L = 96, D = c.model.dim;
    nn::Init init(3);
    nn::Mamba2Block block(ctx, c.model.mamba2_config(), init);
    const Tensor x = mgtest::upload(Shape{B, L, D}, mgtest::randn(B * L * D, 7), false);
    ctx.finish();
    const uint64_t before = ctx.memory().current_total();
    Tensor y = block.forward(x);
    ctx.finish();
    const double kept = double(ctx.memory().current_total() - before);
    autograd::clear_tape();
    const MemoryEstimate m = estimate_memory(c.model, B, L);
    EXPECT_EQ(int64_t(kept), m.mamba2_activations) << text;  // exact: the model counts every saved tensor
  }
}
