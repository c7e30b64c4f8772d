// The MoE variants and the dense MLP in the training config: model.moe.router / normalize_top_k /
// shared_expert_hidden and the model.mlp section (defaults, the nn configs they give, the round
// trip, one clear error line per bad value), their parameter and LoRA counts against the real
// layers, and the activation model of the shared expert and of an MLP block against what their
// forward keeps on the device; the new LoRA kinds through PEFT's target_modules.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "error_text.hpp"
#include "harness.hpp"
#include "magellano/nn/mlp.hpp"
#include "magellano/nn/moe.hpp"
#include "magellano/train/adapter.hpp"
#include "magellano/train/config.hpp"
#include "magellano/train/model_size.hpp"

using mgtest::error_of;
using namespace magellano;
using namespace magellano::train;
using nlohmann::json;

namespace {

Config parse(const std::string& text) { return Config::from_json(json::parse(text)); }

}  // namespace

TEST(MoEConfig, DefaultsAreTodaysMixtralRouting) {
  const Config c = Config::defaults();
  EXPECT_EQ(c.model.moe.router, nn::MoERouter::softmax_topk);
  EXPECT_TRUE(c.model.moe.normalize_top_k);
  EXPECT_EQ(c.model.moe.shared_expert_hidden, 0);
  const nn::MoEConfig m = c.model.moe_config();
  EXPECT_EQ(m.router, nn::MoERouter::softmax_topk);
  EXPECT_TRUE(m.normalize_top_k);
  EXPECT_EQ(m.shared_hidden, 0);
  const json j = c.to_json();
  EXPECT_EQ(j["model"]["moe"]["router"], "softmax_topk");
  EXPECT_EQ(j["model"]["moe"]["normalize_top_k"], true);
  EXPECT_EQ(j["model"]["moe"]["shared_expert_hidden"], 0);
  EXPECT_EQ(j["model"]["mlp"]["hidden"], 0);
  EXPECT_EQ(j["model"]["mlp"]["activation"], "swiglu");
  // model.mlp.hidden 0 follows model.moe.hidden (resolved: round(2.75 · 768) to 64 = 2112).
  EXPECT_EQ(c.model.mlp_config(), (nn::MlpConfig{768, 2112, true}));
}

TEST(MoEConfig, NewKeysReachTheLayerConfigsAndRoundTrip) {
  const Config c = parse(R"({"model": {"dim": 40, "moe": {"router": "topk_softmax", "shared_expert_hidden": 24, "hidden": 16},
                                       "mlp": {"hidden": 56, "activation": "gelu"}}})");
  EXPECT_EQ(c.model.moe_config().router, nn::MoERouter::topk_softmax);
  EXPECT_EQ(c.model.moe_config().shared_hidden, 24);
  EXPECT_EQ(c.model.moe_config().shared_config(), (nn::MlpConfig{40, 24, true}));
  EXPECT_EQ(c.model.mlp_config(), (nn::MlpConfig{40, 56, false}));
  EXPECT_EQ(Config::from_json(c.to_json()), c);
  const Config jamba = parse(R"({"model": {"moe": {"normalize_top_k": false, "hidden": 64}}})");
  EXPECT_FALSE(jamba.model.moe_config().normalize_top_k);
  EXPECT_EQ(jamba.model.mlp_config().hidden, 64);  // follows model.moe.hidden
  EXPECT_EQ(Config::from_json(jamba.to_json()), jamba);
}

TEST(MoEConfig, BadValuesAreOneClearLine) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"model": {"moe": {"router": "topk"}}})",
       "config: 'model.moe.router' must be \"softmax_topk\" or \"topk_softmax\", got \"topk\"."},
      {R"({"model": {"moe": {"router": 1}}})",
       "config: 'model.moe.router' must be \"softmax_topk\" or \"topk_softmax\", got an integer (1)."},
      {R"({"model": {"moe": {"normalize_top_k": "no"}}})",
       "config: 'model.moe.normalize_top_k' must be true or false, got a string (\"no\")."},
      {R"({"model": {"moe": {"router": "topk_softmax", "normalize_top_k": false}}})",
       "config: 'model.moe.normalize_top_k' false needs 'model.moe.router' \"softmax_topk\" (\"topk_softmax\" "
       "weights always sum to 1); remove it or use \"softmax_topk\"."},
      {R"({"model": {"moe": {"shared_expert_hidden": -1}}})",
       "config: 'model.moe.shared_expert_hidden' must be >= 0, got -1."},
      {R"({"model": {"moe": {"shared_expert_hidden": 2000000}}})",
       "config: 'model.moe.shared_expert_hidden' must be <= 1048576 (the largest Magellano supports), got 2000000."},
      {R"({"model": {"moe": {"shared_expert_hidden": 1.5}}})",
       "config: 'model.moe.shared_expert_hidden' must be an integer, got a number (1.5)."},
      {R"({"model": {"mlp": {"hidden": -3}}})", "config: 'model.mlp.hidden' must be >= 0, got -3."},
      {R"({"model": {"mlp": {"hidden": 2000000}}})",
       "config: 'model.mlp.hidden' must be <= 1048576 (the largest Magellano supports), got 2000000."},
      {R"({"model": {"mlp": {"activation": "relu"}}})",
       "config: 'model.mlp.activation' must be \"swiglu\" or \"gelu\", got \"relu\"."},
      {R"({"model": {"mlp": 3}})", "config: 'model.mlp' must be an object (a section), got an integer (3)."},
  };
  for (const auto& [text, want] : cases) EXPECT_EQ(error_of([&] { parse(text); }), want) << text;
  const std::string unknown = error_of([] { parse(R"({"model": {"mlp": {"hiden": 3}}})"); });
  EXPECT_TRUE(mgtest::has(unknown, "unknown key 'model.mlp.hiden' (did you mean 'model.mlp.hidden'?)")) << unknown;
}

// Parameter and LoRA counts equal what the layers allocate; the MLP block's through mlp_block_size.
TEST(MoEConfig, CountsMatchTheLayers) {
  Context& ctx = mgtest::test_ctx();
  for (const char* text :
       {R"({"model": {"vocab_size": 97, "dim": 40, "layers": "MMEM",
                      "moe": {"experts": 3, "top_k": 2, "hidden": 24, "shared_expert_hidden": 56}}})",
        R"({"model": {"vocab_size": 50, "dim": 24, "layers": "EM", "mlp": {"hidden": 20, "activation": "gelu"},
                      "moe": {"experts": 5, "top_k": 1, "hidden": 16, "activation": "gelu", "shared_expert_hidden": 8}}})"}) {
    SCOPED_TRACE(text);
    Config c = parse(text);
    const ParamCounts p = count_params(c.model);
    nn::Init init(1);
    nn::MoEBlock eb(ctx, c.model.moe_config(), init);
    ASSERT_TRUE(eb.moe.shared_expert);
    EXPECT_EQ(p.moe_block, eb.num_parameters());
    EXPECT_EQ(p.shared_expert, eb.moe.shared_expert->num_parameters());
    EXPECT_EQ(p.active_per_token, p.total - c.model.num_moe() * (c.model.moe.experts - c.model.moe.top_k) * p.expert);
    // LoRA on the shared expert: r · Σ (in + out) of its Linears, counted per MoE block.
    c.lora.rank = 3, c.lora.target_modules = {"shared_expert"};
    int64_t lora = 0;
    for (const auto& l : eb.linears()) lora += l.kind == "shared_expert" ? 3 * (l.linear->in_features() + l.linear->out_features()) : 0;
    EXPECT_EQ(count_lora(c).lora, c.model.num_moe() * lora);
    // The dense MLP block.
    nn::MlpBlock fb(ctx, c.model.mlp_config(), init);
    const MlpBlockSize s = mlp_block_size(c.model.mlp_config(), 8);
    EXPECT_EQ(s.params, fb.num_parameters());
    int64_t lin = 0, per_rank = 0;
    for (const auto& l : fb.linears()) {
      EXPECT_EQ(l.kind, "mlp");
      lin += l.linear->weight.numel(), per_rank += l.linear->in_features() + l.linear->out_features();
    }
    EXPECT_EQ(s.linear_weights, lin);
    EXPECT_EQ(s.lora_per_rank, per_rank);
  }
  // Without a shared expert the counts are today's.
  const Config none = parse(R"({"model": {"dim": 40, "layers": "ME", "moe": {"experts": 3, "top_k": 2, "hidden": 24}}})");
  EXPECT_EQ(count_params(none.model).shared_expert, 0);
  EXPECT_EQ(count_params(none.model).moe_block, 40 + 3 * 40 + 3 * 3 * 24 * 40);
}

// The shared expert's and the MLP block's activation terms against what their forward keeps
// (the device memory tracker), as Config.ActivationModelMatchesWhatTheForwardKeeps does for the
// other blocks.
TEST(MoEConfig, ActivationModelMatchesWhatTheForwardKeeps) {
  Context& ctx = mgtest::test_ctx();
  const int64_t B = 2, L = 96, D = 32;
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
  const Config e = parse(R"({"model": {"vocab_size": 64, "dim": 32, "layers": "E",
                                       "moe": {"experts": 4, "top_k": 2, "hidden": 48, "shared_expert_hidden": 80}}})");
  nn::Init init(3);
  nn::MoEBlock eb(ctx, e.model.moe_config(), init);
  const double moe = measure([&](const Tensor& x) { return eb.forward(x).out; });
  EXPECT_NEAR(moe / static_cast<double>(estimate_memory(e.model, B, L).moe_activations), 1.0, 0.05) << moe;
  for (const bool glu : {true, false}) {
    const nn::MlpConfig mc{D, 72, glu};
    nn::MlpBlock fb(ctx, mc, init);
    const double mlp = measure([&](const Tensor& x) { return fb.forward(x); });
    EXPECT_NEAR(mlp / static_cast<double>(mlp_block_size(mc, B * L).activation_bytes), 1.0, 0.05) << mlp;
  }
}

// The new LoRA kinds in PEFT's adapter_config.json: written as module-name suffixes and read back.
TEST(MoEConfig, LoRAKindsRoundTripThroughPeftTargets) {
  LoRASection l;
  l.rank = 2, l.target_modules = {"gate", "experts", "shared_expert", "mlp"};
  const json j = adapter_config_json(l, "");
  EXPECT_EQ(j["target_modules"], json::parse(R"(["gate", "w1", "w2", "w3", "shared_expert.w1", "shared_expert.w2",
                                                  "shared_expert.w3", "mlp.w1", "mlp.w2", "mlp.w3"])"));
  const auto dir = std::filesystem::temp_directory_path() / "mg-moe-config-peft";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "adapter_config.json") << j.dump();
  EXPECT_EQ(read_adapter_config(dir).target_modules, l.target_modules);
  std::filesystem::remove_all(dir);
}
