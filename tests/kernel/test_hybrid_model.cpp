// Hybrid stacks in the whole model: every block kind (Mamba, Mamba2, attention, MoE with routing
// variants and a shared expert, dense MLP) with Granite's multipliers, against the float64
// reference (hybrid_reference.hpp); Hugging Face GraniteMoeHybridForCausalLM and JambaForCausalLM
// folders written from the reference's weights load and give its logits, loss and greedy tokens;
// cached decoding with the paged KV cache (rows of different lengths over several cache blocks,
// a row that ends early and frees its blocks) gives each prompt exactly its tokens alone.
//
// Tolerances: logits 1e-4 relative to max(1, |logit|) and the loss 1e-5 relative: a handful of
// blocks in fp32 (the attention kernel and the scans each agree with float64 to ~1e-6 alone)
// against float64. Greedy tokens: compared where the reference's top two logits are more than
// 1e-3 apart (fp32 logits are within ~1e-5 of it, so only closer ties could flip).
#include <algorithm>
#include <cmath>

#include "error_text.hpp"
#include "harness.hpp"
#include "hf_hybrid_folder.hpp"
#include "hybrid_reference.hpp"
#include "magellano/generate/generator.hpp"
#include "magellano/io/json_file.hpp"
#include "magellano/io/quantize_file.hpp"
#include "magellano/nn/decode_path.hpp"
#include "magellano/nn/model.hpp"
#include "magellano/ops/decode_gemv.hpp"
#include "magellano/train/adapter.hpp"
#include "magellano/train/checkpoint.hpp"
#include "magellano/train/merge.hpp"
#include "magellano/train/hf_layout.hpp"
#include "small_model.hpp"
#include "temp_dir.hpp"

using namespace mgtest;
namespace nn = magellano::nn;
namespace ag = magellano::autograd;
namespace train = magellano::train;
namespace gen = magellano::generate;
using nlohmann::json;

namespace {

std::vector<int32_t> ids_below(int64_t vocab, int64_t n, uint64_t seed) {
  std::vector<int32_t> ids = small_model_ids(n, seed);
  for (auto& id : ids) id %= vocab;
  return ids;
}

std::vector<int32_t> greedy(const nn::Model& model, const std::vector<std::vector<int32_t>>& prompts, int64_t n,
                            std::optional<int32_t> eos = {}, size_t which = 0) {
  gen::GenerationConfig gc;
  gc.max_new_tokens = n, gc.sampling.temperature = 0;
  if (eos) gc.eos_ids = {*eos};
  return gen::generate(model, prompts, gc)[which].ids;
}

// The model against the reference: logits of a batch, the loss, and greedy tokens from a prompt.
void expect_matches_reference(const nn::Model& model, const train::ModelConfig& m, const ref::Weights& w) {
  const int64_t B = 2, L = 11, V = m.vocab_size;
  const auto ids = ids_below(V, B * L, 71);
  ag::NoGradScope no_grad;
  const Vec want = ref::hybrid_logits(m, w, ids, B, L);
  expect_close(model.forward(upload_i32(Shape{B, L}, ids)).logits.to_host(), want, 1e-4, 1e-4, "logits");
  std::vector<int32_t> targets(B * L, -100);
  for (int64_t r = 0; r < B; ++r)
    for (int64_t t = 0; t + 1 < L; ++t) targets[r * L + t] = ids[r * L + t + 1];
  const double ce = ref::hybrid_loss(m, w, ids, B, L);
  EXPECT_NEAR(model.loss(upload_i32(Shape{B, L}, ids), upload_i32(Shape{B, L}, targets)).ce.item(), ce, 1e-5 * ce);
  std::vector<int32_t> prompt = {5, 17, 3, 29};
  const auto got = greedy(model, {prompt}, 12);
  int compared = 0;
  for (int32_t id : got) {
    double margin = 0;
    const int32_t want_id = ref::hybrid_greedy(m, w, prompt, 1, &margin)[0];
    if (margin > 1e-3) {
      ++compared;
      EXPECT_EQ(id, want_id) << "greedy token " << prompt.size() - 4;
    }
    prompt.push_back(id);
  }
  EXPECT_GE(compared, 10) << "too many near-ties for the greedy check to test anything";
}

train::Config config_of(const json& model_section) {
  json j = train::Config::defaults().to_json();
  for (auto it = model_section.begin(); it != model_section.end(); ++it) j["model"][it.key()] = it.value();
  return train::Config::from_json(j);
}

// Every block kind, rotary attention with GQA 2, a shared expert, top-k-then-softmax routing and
// Granite's three multipliers.
json all_kinds_model() {
  return json::parse(R"({
    "vocab_size": 53, "dim": 32, "layers": "MSAEFA", "tie_embeddings": false, "d_state": 8, "dt_rank": 4,
    "embedding_multiplier": 1.7, "residual_multiplier": 0.6, "logits_scaling": 2.5,
    "mamba2": {"head_dim": 16, "d_state": 8},
    "attention": {"heads": 4, "kv_heads": 2, "rope_theta": 10000.0},
    "moe": {"experts": 4, "top_k": 2, "hidden": 24, "router": "topk_softmax", "shared_expert_hidden": 16},
    "mlp": {"hidden": 20}})");
}

// A GraniteMoeHybrid config.json at test size.
json granite_config(bool experts, bool rope, bool tie) {
  json j = json::parse(R"({
    "architectures": ["GraniteMoeHybridForCausalLM"], "model_type": "granitemoehybrid", "vocab_size": 61,
    "hidden_size": 32, "intermediate_size": 24, "shared_intermediate_size": 16, "num_hidden_layers": 3,
    "layer_types": ["mamba", "attention", "mamba"], "num_attention_heads": 2, "num_key_value_heads": 1,
    "mamba_n_heads": 4, "mamba_d_head": "auto", "mamba_n_groups": 1, "mamba_d_state": 8, "mamba_d_conv": 4,
    "mamba_expand": 2, "num_local_experts": 4, "num_experts_per_tok": 2, "embedding_multiplier": 2.0,
    "residual_multiplier": 0.5, "logits_scaling": 3.0, "attention_multiplier": 0.2, "rms_norm_eps": 1e-5,
    "position_embedding_type": "nope", "rope_theta": 10000, "rope_scaling": null, "hidden_act": "silu"})");
  if (!experts) j["num_local_experts"] = 0;
  if (rope) j["position_embedding_type"] = "rope";
  j["tie_word_embeddings"] = tie;
  return j;
}

json jamba_config() {
  return json::parse(R"({
    "architectures": ["JambaForCausalLM"], "model_type": "jamba", "vocab_size": 59, "hidden_size": 32,
    "intermediate_size": 24, "num_hidden_layers": 4, "num_attention_heads": 2, "num_key_value_heads": 1,
    "attn_layer_period": 2, "attn_layer_offset": 1, "expert_layer_period": 2, "expert_layer_offset": 0,
    "num_experts": 4, "num_experts_per_tok": 2, "mamba_d_state": 8, "mamba_d_conv": 4, "mamba_expand": 2,
    "mamba_dt_rank": "auto", "mamba_conv_bias": true, "mamba_proj_bias": false, "rms_norm_eps": 1e-6,
    "tie_word_embeddings": false, "sliding_window": null, "hidden_act": "silu"})");
}

using Writer = std::function<void(const nn::Model&, const ref::Weights&, const std::filesystem::path&)>;

// A Hugging Face folder of `config` written by `write` from random weights; loaded and checked
// against the reference. `layers` is the pattern the config must give (the reference follows the
// loaded config, so what the config becomes is checked on its own here and in
// test_hf_hybrid_config.cpp).
void check_hf_folder(const json& config, const std::string& layers, const Writer& write) {
  TempDir d;
  magellano::io::write_json_atomically(d.path() / "config.json", config);
  const train::Config c = train::read_hf_hybrid(d.path()).config;
  const nn::Model shape(test_ctx(), train::model_spec(c), 1);
  const ref::Weights w = ref::random_weights(shape, 90);
  write(shape, w, d.path());
  const auto loaded = train::load_model(d.path(), test_ctx());
  EXPECT_TRUE(loaded.hugging_face);
  EXPECT_EQ(loaded.config.model.layers, layers);
  expect_matches_reference(*loaded.model, loaded.config.model, w);
}

// The error of loading a folder written for `written` whose config.json then says `edited`.
std::string mismatch_error(const json& written, const json& edited, const Writer& write) {
  TempDir d;
  magellano::io::write_json_atomically(d.path() / "config.json", written);
  const nn::Model shape(test_ctx(), train::model_spec(train::read_hf_hybrid(d.path()).config), 1);
  write(shape, ref::random_weights(shape, 91), d.path());
  magellano::io::write_json_atomically(d.path() / "config.json", edited);
  return error_of([&] { train::load_model(d.path(), test_ctx()); });
}

}  // namespace

TEST(HybridModel, EveryBlockKindMatchesTheFloat64Reference) {
  const train::Config c = config_of(all_kinds_model());
  const nn::Model model(test_ctx(), train::model_spec(c), 3);
  const ref::Weights w = ref::random_weights(model, 11);
  ref::upload(model, w);
  expect_matches_reference(model, c.model, w);
}

TEST(HybridModel, GraniteFoldersMatchTheFloat64Reference) {
  for (const auto& [experts, rope, tie] : {std::tuple{true, false, true}, std::tuple{false, true, false}}) {
    SCOPED_TRACE(std::string(experts ? "experts" : "dense") + (rope ? ", rope" : ", nope"));
    const json config = granite_config(experts, rope, tie);
    check_hf_folder(config, experts ? "SEAESE" : "SFAFSF", [&](const nn::Model& m, const ref::Weights& w, const auto& dir) {
      write_hf_granite_folder(m, w, dir, config);
    });
  }
}

TEST(HybridModel, HuggingFaceFoldersThatDisagreeWithTheirConfigAreOneClearError) {
  const json g = granite_config(true, false, true);
  json wider = g;
  wider["shared_intermediate_size"] = 20;
  const Writer granite = [&](const nn::Model& m, const ref::Weights& w, const auto& dir) {
    write_hf_granite_folder(m, w, dir, g);
  };
  const std::string e = mismatch_error(g, wider, granite);  // the first shared-MLP tensor read names both shapes
  EXPECT_TRUE(has(e, "'model.layers.0.shared_mlp.") && has(e, "[32, 20]") && has(e, "match")) << e;
  json attention_first = g;
  attention_first["layer_types"] = {"attention", "mamba", "mamba"};
  expect_error([&] { throw magellano::Error(mismatch_error(g, attention_first, granite)); },
               "has no tensor 'model.layers.0.self_attn.q_proj.weight'");
  json jamba = jamba_config();
  const Writer per_expert = [&](const nn::Model& m, const ref::Weights& w, const auto& dir) {
    write_hf_jamba_folder(m, w, dir, jamba, false);
  };
  json more_experts = jamba;
  more_experts["num_experts"] = 5;
  expect_error([&] { throw magellano::Error(mismatch_error(jamba, more_experts, per_expert)); },
               "model.layers.0.feed_forward.router.weight");
}

TEST(HybridModel, JambaFoldersMatchTheFloat64Reference) {
  for (bool fused : {false, true}) {
    SCOPED_TRACE(fused ? "fused experts" : "per-expert tensors");
    check_hf_folder(jamba_config(), "MEAFMEAF", [fused](const nn::Model& m, const ref::Weights& w, const auto& dir) {
      write_hf_jamba_folder(m, w, dir, jamba_config(), fused);
    });
  }
}

TEST(HybridModel, BatchedCachedDecodingGivesEachPromptItsTokensAlone) {
  // Prompts over one, two and three 32-position cache blocks; the cache's pools double as rows grow.
  const train::Config c = config_of(all_kinds_model());
  const nn::Model model(test_ctx(), train::model_spec(c), 3);
  ref::upload(model, ref::random_weights(model, 12));
  const std::vector<std::vector<int32_t>> prompts = {ids_below(53, 3, 1), ids_below(53, 37, 2), ids_below(53, 70, 3)};
  std::vector<std::vector<int32_t>> alone;
  for (const auto& p : prompts) alone.push_back(greedy(model, {p}, 30));
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(greedy(model, prompts, 30, {}, i), alone[i]) << "prompt " << i;
  // Row 0 ends at its first token (its end-of-text): its blocks are freed mid-batch, the others go on.
  const int32_t eos = alone[0][0];
  for (size_t i = 1; i < prompts.size(); ++i) {
    std::vector<int32_t> want = alone[i];
    const auto stop = std::find(want.begin(), want.end(), eos);
    if (stop != want.end()) want.erase(stop + 1, want.end());
    EXPECT_EQ(greedy(model, prompts, 30, eos, i), want) << "prompt " << i << " beside a finished row";
  }
}

// The fused decode step of the attention and dense MLP blocks (q, k, v with the norm, o_proj and
// w2 with the residual through ops::decode_gemv) against the unfused one (Linear::forward's
// products), step by step from the same prefilled state: every block kind with rotary GQA, then
// NoPE with a GELU MLP; batch 17 is above ops::kDecodeGemvRows and steps unfused in both. fp32
// both; logits O(1): 1e-4 relative, 2e-5 absolute, as test_model's fused-decoding test.
TEST(HybridModel, FusedDecodingEqualsTheUnfusedSteps) {
  json nope_gelu = all_kinds_model();
  nope_gelu["attention"]["rope_theta"] = 0.0;
  nope_gelu["mlp"]["activation"] = "gelu";
  json wide_dt = all_kinds_model();  // dt_rank 32: dt_proj is int4 too (fused: MambaState::dt_w)
  wide_dt["dt_rank"] = 32;
  ag::NoGradScope no_grad;
  // int4: every Linear whose width 32 divides held as int4 in groups of 32 (ops::decode_gemv's int4
  // variant in the fused steps; the unfused ones run ops::int4_linear), the rest f32.
  for (const auto& [what, model_json, int4] :
       {std::tuple{"rope, SwiGLU", all_kinds_model(), false}, {"NoPE, GELU", nope_gelu, false},
        {"int4, rope, SwiGLU", all_kinds_model(), true}, {"int4 with an int4 dt_proj", wide_dt, true}}) {
    const train::Config c = config_of(model_json);
    nn::ModelSpec spec = train::model_spec(c);
    if (int4) spec.base_storage = nn::WeightStorage::int4, spec.int4_group_size = 32;
    const nn::Model model(test_ctx(), spec, 3);
    if (!int4) ref::upload(model, ref::random_weights(model, 13));
    for (const int64_t B : {1, 3, 17}) {
      SCOPED_TRACE(std::string(what) + ", batch " + std::to_string(B));
      const int64_t L = 6, V = c.model.vocab_size;
      const auto prompt = ids_below(V, B * L, 5);
      nn::DecodeState fused_state, plain_state;
      (void)model.prefill(upload_i32(Shape{B, L}, prompt), fused_state);
      (void)model.prefill(upload_i32(Shape{B, L}, prompt), plain_state);
      for (int t = 0; t < 5; ++t) {
        const auto ids = ids_below(V, B, 20 + t);
        nn::force_fused_decode(true);
        const auto fused = model.step(upload_i32(Shape{B}, ids), fused_state).to_host();
        nn::force_fused_decode(false);
        const auto plain = model.step(upload_i32(Shape{B}, ids), plain_state).to_host();
        nn::force_fused_decode(std::nullopt);
        expect_close(fused, to_f64(plain), 1e-4, 2e-5, "logits at step " + std::to_string(t));
      }
      // The Mamba block (first in the pattern) took the fused step with its int4 dt_proj dequantized
      // (a zeroed or negated dt_w fails the logits above; a 1% error in it stays within 1e-4).
      EXPECT_EQ(fused_state.mamba[0].dt_w.defined(),
                model_json["dt_rank"] == 32 && B <= magellano::ops::kDecodeGemvRows);
      EXPECT_FALSE(plain_state.mamba[0].dt_w.defined());
    }
  }
}

TEST(HybridModel, AdaptersMergeIntoHuggingFaceHybridFolders) {
  // LoRA on every kind of target of a Granite folder (packed experts and the shared MLP included)
  // and of a Jamba folder (its dense MLPs): merge-adapter writes the base's own layout, whose
  // model equals base + adapter; the same base also loads with NF4 weights for QLoRA.
  for (const bool granite : {true, false}) {
    SCOPED_TRACE(granite ? "granite" : "jamba");
    TempDir d;
    const json config = granite ? granite_config(true, false, true) : jamba_config();
    std::filesystem::create_directories(d.path() / "base");
    magellano::io::write_json_atomically(d.path() / "base" / "config.json", config);
    const nn::Model shape(test_ctx(), train::model_spec(train::read_hf_hybrid(d.path() / "base").config), 1);
    const ref::Weights w = ref::random_weights(shape, 92);
    if (granite)
      write_hf_granite_folder(shape, w, d.path() / "base", config);
    else
      write_hf_jamba_folder(shape, w, d.path() / "base", config, false);
    train::LoRASection ls;
    ls.rank = 2, ls.alpha = 4;
    ls.target_modules = granite ? std::vector<std::string>{"in_proj", "out_proj", "q_proj", "k_proj", "v_proj", "o_proj",
                                                           "gate", "experts", "shared_expert"}
                                : std::vector<std::string>{"in_proj", "x_proj", "dt_proj", "out_proj", "q_proj", "o_proj",
                                                           "gate", "experts", "mlp"};
    auto adapted = train::load_model(d.path() / "base", test_ctx(), &ls);
    randomize_adapters(*adapted.model, 301);
    train::save_adapter(d.path() / "adapter", *adapted.model, ls, "");
    const auto rep = train::merge_adapter(d.path() / "base", d.path() / "adapter", d.path() / "merged", test_ctx());
    EXPECT_EQ(rep.merged, static_cast<int64_t>(adapted.model->lora_parameters().size() / 2));
    const auto merged = train::load_model(d.path() / "merged", test_ctx());
    EXPECT_TRUE(merged.hugging_face);
    ag::NoGradScope no_grad;
    const Tensor x = upload_i32(Shape{2, 9}, ids_below(merged.config.model.vocab_size, 18, 12));
    expect_close(merged.model->forward(x).logits.to_host(), to_f64(adapted.model->forward(x).logits.to_host()), 1e-4,
                 2e-5, "merged vs base + adapter");
    train::LoRASection qlora = ls;
    qlora.base_precision = nn::WeightStorage::nf4;
    const auto q = train::load_model(d.path() / "base", test_ctx(), &qlora);
    for (float v : q.model->forward(x).logits.to_host()) ASSERT_TRUE(std::isfinite(v));
    // `magellano quantize` of the folder: its 2-D weights become NF4 under their own names, the
    // packed experts are copied; the result loads as the same family, close to the fp32 model
    // (NF4 rounds each weight by up to ~8% of its block's absmax: the logits move by a fraction
    // of their spread, far less than their size).
    magellano::io::quantize_checkpoint_dir(test_ctx(), d.path() / "base", d.path() / "nf4");
    const auto quantized = train::load_model(d.path() / "nf4", test_ctx());
    EXPECT_TRUE(quantized.hugging_face);
    const auto base = train::load_model(d.path() / "base", test_ctx());
    const auto want = base.model->forward(x).logits.to_host(), got = quantized.model->forward(x).logits.to_host();
    double diff = 0, size = 0;
    for (size_t i = 0; i < want.size(); ++i) diff += std::fabs(got[i] - want[i]), size += std::fabs(want[i]);
    EXPECT_GT(diff, 0.0) << "the weights were not quantized";
    EXPECT_LT(diff, 0.2 * size) << "mean |NF4 - fp32| logit difference against mean |logit|";
  }
}
