// Mamba2 in the whole model: Hugging Face Mamba2ForCausalLM folders written from the float64
// reference's weights load and give the reference's logits, loss and greedy tokens (with every
// time_step_limit spelling real files use); a folder whose tensors disagree with its config is
// one clear error; mixed Mamba / Mamba2 / MoE stacks decode step by step as their parallel
// forward, and batched generation gives each prompt its own ids; gradient checkpointing gives bit-identical gradients; LoRA on in_proj / out_proj of
// Mamba2 blocks over fp32 and NF4 bases equals the merged model.
//
// Tolerances: logits relative 1e-4 of max(1, |logit|), the loss relative 1e-5: two Mamba2
// blocks and the head in fp32 against float64 (the block alone agrees to ~1e-6, test_mamba2.cpp).
// Greedy tokens: compared where the reference's top two logits are more than 1e-3 apart (the
// fp32 logits are within ~1e-5 of the reference, so only closer ties could flip).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "error_text.hpp"
#include "harness.hpp"
#include "hf_mamba2_folder.hpp"
#include "magellano/generate/generator.hpp"
#include "magellano/nn/model.hpp"
#include "magellano/train/checkpoint.hpp"
#include "small_model.hpp"
#include "temp_dir.hpp"

using namespace mgtest;
namespace nn = magellano::nn;
namespace ag = magellano::autograd;
namespace fs = std::filesystem;
namespace train = magellano::train;

namespace {

// D 12, Di 24 in 4 heads of 6, 2 groups of state 8, conv width 4; two blocks, vocabulary 37.
ref::Mamba2Dims hf_dims(bool bias, double lo = 0.0, double hi = INFINITY) {
  ref::Mamba2Dims s{0, 0, 12, 24, 6, 2, 8, 4};
  s.bias = bias, s.lo = lo, s.hi = hi, s.eps = 1e-6;
  return s;
}

std::vector<int32_t> ids_below(int64_t vocab, int64_t n, uint64_t seed) {
  std::vector<int32_t> ids = small_model_ids(n, seed);
  for (auto& id : ids) id %= vocab;
  return ids;
}

// The loaded model against the reference: logits of a batch, the loss, and the greedy tokens.
void expect_matches_reference(const nn::Model& model, const ref::Mamba2Model& r) {
  const int64_t B = 2, L = 13, V = r.vocab;
  const auto ids = ids_below(V, B * L, 71), targets = ids_below(V, B * L, 72);
  ag::NoGradScope no_grad;
  const Vec want = ref::mamba2_model_logits(r, ids, B, L);
  expect_close(model.forward(upload_i32(Shape{B, L}, ids)).logits.to_host(), want, 1e-4, 1e-4, "logits");
  Vec t(targets.begin(), targets.end());
  const double ce = ref::cross_entropy(want, t, V, -100)[0];
  EXPECT_NEAR(model.loss(upload_i32(Shape{B, L}, ids), upload_i32(Shape{B, L}, targets)).ce.item(), ce, 1e-5 * ce);
  // Greedy decoding from a prompt: each token is the reference's argmax after the same prefix.
  std::vector<int32_t> all = {5, 17, 3, 29};
  magellano::generate::GenerationConfig gc;
  gc.max_new_tokens = 12, gc.sampling.temperature = 0;
  const auto got = magellano::generate::generate(model, {all}, gc)[0].ids;
  ASSERT_EQ(got.size(), 12u);
  int compared = 0;
  for (int32_t id : got) {
    const int64_t n = int64_t(all.size());
    const Vec logits = ref::mamba2_model_logits(r, all, 1, n);
    const double* row = logits.data() + (n - 1) * V;
    const int64_t arg = std::max_element(row, row + V) - row;
    double second = -INFINITY;
    for (int64_t v = 0; v < V; ++v)
      if (v != arg) second = std::max(second, row[v]);
    if (row[arg] - second > 1e-3) {
      ++compared;
      EXPECT_EQ(id, arg) << "greedy token " << all.size() - 4;
    }
    all.push_back(id);
  }
  EXPECT_GE(compared, 10) << "too many near-ties for the greedy check to test anything";
}

}  // namespace

TEST(Mamba2Model, HuggingFaceFoldersMatchTheFloat64Reference) {
  struct Case {
    const char* limit;  // config.json's time_step_limit, as written
    double lo, hi;      // what the reference clamps to
    bool bias, tie;
  };
  for (const Case& c : {Case{"[0.0, Infinity]", 0.0, INFINITY, true, false},
                        Case{"[0.0, {\"__float__\": \"Infinity\"}]", 0.0, INFINITY, false, false},
                        Case{"", 0.0, INFINITY, false, true},
                        Case{"[0.02, 0.09]", 0.02, 0.09, true, false}}) {
    SCOPED_TRACE(std::string("time_step_limit ") + (*c.limit ? c.limit : "absent"));
    TempDir d;
    const auto r = ref::random_mamba2_model(hf_dims(c.bias, c.lo, c.hi), 37, 2, c.tie, 40);
    write_hf_mamba2_folder(r, d.path(), hf_mamba2_config_text(r, c.limit));
    const auto loaded = train::load_model(d.path(), test_ctx());
    EXPECT_TRUE(loaded.hugging_face);
    const auto& m = loaded.config.model;
    EXPECT_EQ(m.layers, "(S)x2");
    EXPECT_EQ(m.tie_embeddings, c.tie);
    EXPECT_EQ(m.mamba2.bias, c.bias);
    EXPECT_EQ(m.mamba2.dt_lo, c.lo);
    EXPECT_EQ(m.mamba2.dt_hi, c.hi);
    EXPECT_EQ(m.mamba2.chunk_size, 0);  // the device's default, not mamba_ssm's 256
    EXPECT_EQ(m.norm_eps, 1e-6);
    expect_matches_reference(*loaded.model, r);
  }
}

TEST(Mamba2Model, AFolderThatDisagreesWithItsConfigIsOneClearError) {
  TempDir d;
  const auto r = ref::random_mamba2_model(hf_dims(false), 37, 2, false, 41);
  auto with_config = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j = nlohmann::json::parse(hf_mamba2_config_text(r, "[0.0, {\"__float__\": \"Infinity\"}]"));
    edit(j);
    write_hf_mamba2_folder(r, d.path(), j.dump());
    return error_of([&] { train::load_model(d.path(), test_ctx()); });
  };
  // d_state 16 in the config, 8 in the tensors: in_proj is the first tensor whose shape differs.
  std::string e = with_config([](nlohmann::json& j) { j["state_size"] = 16; });
  EXPECT_TRUE(has(e, "loading 'backbone.layers.0.mixer.in_proj.weight' from " + (d.path() / "model.safetensors").string() +
                         ": stored shape [84, 12] differs from the model's [116, 12]")) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  e = with_config([](nlohmann::json& j) { j["num_heads"] = 5; });
  EXPECT_TRUE(has(e, "\"num_heads\" x \"head_dim\" = 5 x 6 = 30 must equal \"expand\" x \"hidden_size\" = 2 x 12 = 24")) << e;
  e = with_config([](nlohmann::json& j) { j["n_groups"] = 3; });
  EXPECT_TRUE(has(e, "\"n_groups\" 3 does not divide \"num_heads\" 4")) << e;
  e = with_config([](nlohmann::json& j) { j["time_step_limit"] = {0.1, 0.05}; });
  EXPECT_TRUE(has(e, "\"time_step_limit\" is [0.1,0.05]; expected [lo, hi] with 0 <= lo < hi")) << e;
  e = with_config([](nlohmann::json& j) { j["rms_norm"] = false; });
  EXPECT_TRUE(has(e, "always applies the gated RMSNorm")) << e;
  // The config says untied (Mamba2's default) but the file has no lm_head.weight.
  write_hf_mamba2_folder(ref::random_mamba2_model(hf_dims(false), 37, 2, true, 41), d.path(),
                         hf_mamba2_config_text(r, ""));
  e = error_of([&] { train::load_model(d.path(), test_ctx()); });
  EXPECT_TRUE(has(e, "has no tensor 'lm_head.weight'")) << e;
}

// Mamba, Mamba2 and MoE blocks in one stack: stepping every position from an empty state, and
// continuing after a parallel prefill, gives the parallel forward's logits.
TEST(Mamba2Model, MixedStacksDecodeAsTheirParallelForward) {
  for (const char* layers : {"SMES", "MSSE"}) {
    SCOPED_TRACE(layers);
    nn::Model m(test_ctx(), small_model_spec(layers), 2);
    const int64_t B = 2, L = 19, V = 61, prompt = 11;
    const auto ids = small_model_ids(B * L, 3);
    ag::NoGradScope no_grad;
    const auto full = m.forward(upload_i32(Shape{B, L}, ids)).logits.to_host();  // (B, L, V)
    std::vector<int32_t> head;
    for (int64_t b = 0; b < B; ++b) head.insert(head.end(), ids.begin() + b * L, ids.begin() + b * L + prompt);
    auto stepped = m.empty_state(B), prefilled = m.empty_state(B);
    m.prefill(upload_i32(Shape{B, prompt}, head), prefilled);
    for (int64_t t = 0; t < L; ++t) {
      const Tensor id = upload_i32(Shape{B}, {ids[t], ids[L + t]});
      const auto got = m.step(id, stepped).to_host();  // (B, V)
      Vec want;
      for (int64_t b = 0; b < B; ++b)
        want.insert(want.end(), full.begin() + (b * L + t) * V, full.begin() + (b * L + t + 1) * V);
      expect_close(got, want, 1e-4, 2e-5, "stepped logits at position " + std::to_string(t));
      if (t >= prompt) expect_close(m.step(id, prefilled).to_host(), want, 1e-4, 2e-5, "after prefill, t " + std::to_string(t));
    }
  }
}

// Batched generation over a mixed stack: prompts of different lengths are prefilled one by one
// and their Mamba and Mamba2 states gathered into one batch; each row gets its own prompt's ids.
TEST(Mamba2Model, BatchedGenerationGivesEachPromptItsOwnIds) {
  nn::Model m(test_ctx(), small_model_spec("SMSE"), 4);
  const std::vector<std::vector<int32_t>> prompts = {{3, 14, 15, 9, 2, 6}, {5}, {35, 8, 9}};
  magellano::generate::GenerationConfig gc;
  gc.max_new_tokens = 8, gc.sampling.temperature = 0;
  const auto batch = magellano::generate::generate(m, prompts, gc);
  ASSERT_EQ(batch.size(), 3u);
  for (size_t i = 0; i < prompts.size(); ++i)
    EXPECT_EQ(batch[i].ids, magellano::generate::generate(m, {prompts[i]}, gc)[0].ids) << "prompt " << i;
}

TEST(Mamba2Model, CheckpointingGradientsAreBitIdentical) {
  nn::Model m(test_ctx(), small_model_spec("SESMSE"), 9);
  const auto params = m.parameters();
  const int64_t B = 2, L = 11;
  const Tensor x = upload_i32(Shape{B, L}, small_model_ids(B * L, 5)), y = upload_i32(Shape{B, L}, small_model_ids(B * L, 6));
  auto grads = [&](int64_t k) {
    for (const auto& p : params) p.tensor.meta()->grad_valid = false;
    m.set_checkpoint_every(k);
    ag::backward(m.loss(x, y).loss);
    std::vector<std::vector<float>> g;
    for (const auto& p : params) g.push_back(p.tensor.grad().defined() ? p.tensor.grad().to_host() : std::vector<float>{});
    return g;
  };
  const auto want = grads(0);
  size_t mamba2_params = 0;
  for (size_t i = 0; i < params.size(); ++i)
    if (params[i].name.find("dt_bias") != std::string::npos) {
      ++mamba2_params;
      EXPECT_FALSE(want[i].empty()) << params[i].name;
    }
  EXPECT_EQ(mamba2_params, 3u);
  for (int64_t k : {1, 2, 4}) {
    const auto got = grads(k);
    for (size_t i = 0; i < params.size(); ++i) {
      ASSERT_EQ(got[i].size(), want[i].size()) << params[i].name;
      EXPECT_EQ(std::memcmp(got[i].data(), want[i].data(), got[i].size() * 4), 0)
          << params[i].name << " differs with checkpointing every " << k << " blocks";
    }
  }
}

// LoRA on in_proj and out_proj of Mamba2 blocks, over an fp32 and an NF4 base: the model equals
// the plain model (same seed) whose Linear weights are the base's (dequantized), plus
// (alpha / r)·B·A for in_proj / out_proj; only the adapters receive gradients.
TEST(Mamba2Model, LoRAOnFp32AndNf4BasesEqualsTheMergedModel) {
  for (auto base : {nn::WeightStorage::f32, nn::WeightStorage::nf4}) {
    SCOPED_TRACE(nn::to_string(base));
    nn::ModelSpec s = small_model_spec("SES");
    s.lora.rank = 3, s.lora.alpha = 6, s.lora.targets = {"in_proj", "out_proj"};
    s.base_storage = base;
    nn::Model lora(test_ctx(), s, 12);
    randomize_adapters(lora, 50);
    nn::Model merged(test_ctx(), small_model_spec("SES"), 12);
    auto plain = merged.linears();
    size_t adapted = 0;
    for (const auto& l : lora.linears()) {
      const int64_t out = l.linear->out_features(), in = l.linear->in_features(), r = s.lora.rank;
      std::vector<float> w = l.linear->dense_weight().to_host();
      if (l.linear->lora) {
        ++adapted;
        const auto A = l.linear->lora->A.to_host(), Bm = l.linear->lora->B.to_host();
        for (int64_t o = 0; o < out; ++o)
          for (int64_t i = 0; i < in; ++i) {
            double acc = 0;
            for (int64_t k = 0; k < r; ++k) acc += double(Bm[o * r + k]) * A[k * in + i];
            w[o * in + i] = static_cast<float>(w[o * in + i] + 2.0 * acc);
          }
      }
      for (auto& p : plain)
        if (p.path == l.path) p.linear->set_weight(w);
    }
    EXPECT_EQ(adapted, 4u);  // in_proj and out_proj of both Mamba2 blocks
    const int64_t B = 2, L = 9;
    const Tensor x = upload_i32(Shape{B, L}, small_model_ids(B * L, 13)), y = upload_i32(Shape{B, L}, small_model_ids(B * L, 14));
    auto out = lora.loss(x, y);
    {
      ag::NoGradScope ng;
      expect_close(lora.forward(x).logits.to_host(), to_f64(merged.forward(x).logits.to_host()), 1e-4, 1e-5, "logits");
    }
    ag::backward(out.loss);
    for (const auto& p : lora.parameters()) EXPECT_FALSE(p.tensor.grad().defined()) << p.name;
    for (const auto& p : lora.lora_parameters()) EXPECT_TRUE(p.tensor.grad().defined()) << p.name;
  }
}
