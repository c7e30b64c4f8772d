// The assembled model: Hugging Face names, step decoding = parallel forward through Mamba and
// MoE blocks, the loss at initialisation, and gradient descent lowering the loss.
#include <cmath>
#include <optional>
#include <set>

#include "harness.hpp"
#include "magellano/io/st_dtype.hpp"
#include "magellano/nn/decode_path.hpp"
#include "magellano/nn/model.hpp"
#include "magellano/ops/elementwise.hpp"

using namespace mgtest;
using magellano::nn::Model;
using magellano::nn::ModelSpec;
namespace ag = magellano::autograd;

namespace {

ModelSpec small_spec(const std::string& layers, bool tie = true) {
  ModelSpec s;
  s.vocab_size = 97, s.dim = 16, s.layers = layers, s.tie_embeddings = tie;
  s.mamba.d_state = 8;
  s.mamba2.head_dim = 8, s.mamba2.n_groups = 2, s.mamba2.d_state = 8;
  s.moe.hidden = 24, s.moe.experts = 4, s.moe.top_k = 2;
  return s;
}

std::vector<int32_t> random_ids(int64_t n, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> v(n);
  for (auto& x : v) x = static_cast<int32_t>(rng() % vocab);
  return v;
}

}  // namespace

TEST(Model, HuggingFaceNamesAndCounts) {
  Model m(test_ctx(), small_spec("MEM"), 1);
  std::set<std::string> names;
  int64_t total = 0;
  for (const auto& p : m.parameters()) {
    names.insert(p.name);
    total += p.tensor.numel();
  }
  for (const char* n : {"backbone.embeddings.weight", "backbone.layers.0.norm.weight",
                        "backbone.layers.0.mixer.in_proj.weight", "backbone.layers.0.mixer.A_log",
                        "backbone.layers.1.norm.weight", "backbone.layers.1.moe.gate.weight",
                        "backbone.layers.1.moe.experts.3.w3.weight", "backbone.layers.2.mixer.out_proj.weight",
                        "backbone.norm_f.weight"})
    EXPECT_TRUE(names.count(n)) << n;
  EXPECT_FALSE(names.count("lm_head.weight"));  // tied
  EXPECT_EQ(total, m.num_parameters());
  Model untied(test_ctx(), small_spec("M", false), 1);
  bool has_head = false;
  for (const auto& p : untied.parameters()) has_head |= p.name == "lm_head.weight";
  EXPECT_TRUE(has_head);
  EXPECT_THROW(Model(test_ctx(), small_spec("MXM"), 1), magellano::Error);
}

TEST(Model, StepDecodingEqualsTheParallelForward) {
  Model m(test_ctx(), small_spec("MEM"), 2);
  const int64_t B = 2, L = 20, V = 97;
  const auto ids = random_ids(B * L, V, 3);
  ag::NoGradScope no_grad;
  const auto full = m.forward(upload_i32(Shape{B, L}, ids)).logits.to_host();  // (B, L, V)
  auto state = m.empty_state(B);
  for (int64_t t = 0; t < L; ++t) {
    const auto got = m.step(upload_i32(Shape{B}, {ids[t], ids[L + t]}), state).to_host();  // (B, V)
    Vec want;
    for (int64_t b = 0; b < B; ++b)
      want.insert(want.end(), full.begin() + (b * L + t) * V, full.begin() + (b * L + t + 1) * V);
    // Two GEMM shapes and two scan kernels in fp32; logits are O(1).
    expect_close(got, want, 1e-4, 2e-5, "logits at position " + std::to_string(t));
  }
}

// The fused decode path (nn/decode_path.hpp) against the unfused one, step by step from the same
// prefilled state, over the options it fuses: every router mode, a shared expert, GELU experts,
// in_proj / out_proj biases, no conv bias, Granite's scalings, an untied head, and a batch above
// ops::kDecodeGemvRows (which steps unfused), in both kernel mappings. fp32 both; logits O(1).
TEST(Model, FusedDecodingEqualsTheUnfusedSteps) {
  struct Variant {
    const char* what;
    std::function<void(ModelSpec&)> set;
    int64_t batch;
  };
  const std::vector<Variant> variants{
      {"softmax_topk, renormalised", [](ModelSpec&) {}, 2},
      {"topk_softmax, shared expert, biases, scalings, untied head",
       [](ModelSpec& s) {
         s.moe.router = magellano::nn::MoERouter::topk_softmax;
         s.moe.shared_hidden = 12;
         s.mamba.proj_bias = true;
         s.embedding_multiplier = 1.5f, s.residual_multiplier = 0.8f, s.logits_scaling = 2.0f;
         s.tie_embeddings = false;
       },
       3},
      {"softmax_topk raw, GELU experts, no conv bias",
       [](ModelSpec& s) {
         s.moe.normalize_top_k = false, s.moe.swiglu = false;
         s.mamba.conv_bias = false;
       },
       1},
      {"batch 17", [](ModelSpec&) {}, 17}};
  ag::NoGradScope no_grad;
  for (const bool other : {false, true})  // both kernel mappings (the GPUs' fuses x_proj into the ssm step)
  for (const auto& v : variants) {
    SCOPED_TRACE(std::string(v.what) + (other ? ", the other kernel mapping" : ""));
    std::optional<ForcedMapping> forced;
    if (other) forced.emplace(other_mapping());
    ModelSpec spec = small_spec("MEME");
    v.set(spec);
    Model m(test_ctx(), spec, 4);
    const int64_t B = v.batch, L = 5;
    const auto prompt = random_ids(B * L, 97, 5);
    magellano::nn::DecodeState fused_state, plain_state;
    (void)m.prefill(upload_i32(Shape{B, L}, prompt), fused_state);
    (void)m.prefill(upload_i32(Shape{B, L}, prompt), plain_state);
    for (int t = 0; t < 6; ++t) {
      const auto ids = random_ids(B, 97, 10 + t);
      magellano::nn::force_fused_decode(true);
      const auto fused = m.step(upload_i32(Shape{B}, ids), fused_state).to_host();
      magellano::nn::force_fused_decode(false);
      const auto plain = m.step(upload_i32(Shape{B}, ids), plain_state).to_host();
      magellano::nn::force_fused_decode(std::nullopt);
      expect_close(fused, to_f64(plain), 1e-4, 2e-5, "logits at step " + std::to_string(t));
    }
  }
}

TEST(Model, InitialLossIsNearUniformAndGradientsReachEveryParameter) {
  Model m(test_ctx(), small_spec("EM"), 4);
  const int64_t B = 3, L = 17;
  auto ids = random_ids(B * (L + 1), 97, 5);
  std::vector<int32_t> x, y;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < L; ++t) x.push_back(ids[b * (L + 1) + t]), y.push_back(ids[b * (L + 1) + t + 1]);
  auto out = m.loss(upload_i32(Shape{B, L}, x), upload_i32(Shape{B, L}, y));
  const float ce = out.ce.item();
  EXPECT_NEAR(ce, std::log(97.0), 0.3);  // small init: close to the uniform prediction
  EXPECT_GT(out.aux.item(), 0.0f);
  ag::backward(out.loss);
  for (const auto& p : m.parameters()) {
    Tensor g = p.tensor.grad();
    if (p.name.find(".experts.") != std::string::npos && !g.defined()) continue;  // an idle expert
    ASSERT_TRUE(g.defined()) << p.name;
    for (float v : g.to_host()) ASSERT_TRUE(std::isfinite(v)) << p.name;
  }
}

TEST(Model, GradientDescentLowersTheLossOnAFixedBatch) {
  Model m(test_ctx(), small_spec("ME"), 6);
  const int64_t B = 2, L = 16;
  auto ids = random_ids(B * (L + 1), 97, 7);
  std::vector<int32_t> x, y;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < L; ++t) x.push_back(ids[b * (L + 1) + t]), y.push_back(ids[b * (L + 1) + t + 1]);
  Tensor tx = upload_i32(Shape{B, L}, x), ty = upload_i32(Shape{B, L}, y);
  float first = 0, last = 0;
  for (int step = 0; step < 30; ++step) {
    for (auto& p : m.parameters()) p.tensor.zero_grad();
    auto out = m.loss(tx, ty);
    if (step == 0) first = out.ce.item();
    last = out.ce.item();
    ag::backward(out.loss);
    ag::NoGradScope ng;
    for (auto& p : m.parameters())
      if (p.tensor.grad().defined()) magellano::ops::scale_into(p.tensor.grad(), -0.5f, p.tensor, true);
  }
  EXPECT_LT(last, 0.5f * first) << "memorising one batch should at least halve the loss";
}

// fp16 weight storage (ModelSpec::weight_dtype f16): the matrix weights (embedding and tied
// head, every Linear) are f16, everything else f32. Every product runs on an exact widening of
// the weights, so the model equals the f32 model of the same seed whose matrix weights are
// rounded to fp16: the same loss bits, the same f32 gradients bits, and each fp16 gradient is
// that model's gradient rounded once to fp16 -- except the tied embedding's, which gets two
// contributions (the head's product, then the lookup's) and so two roundings, each 2^-11 of
// its contribution's size; the contributions can cancel, so the bound is 2^-9 of the largest
// value in the row (a dropped or doubled contribution is of the row's size).
// With gradient checkpointing (recompute in the backward) the same holds; and with Mamba2 blocks.
TEST(Model, Fp16WeightsEqualTheF32ModelWithRoundedWeights) {
  for (const auto& [layers, tie] : {std::pair{"MEME", true}, {"MEME", false}, {"SEMS", true}}) {
    SCOPED_TRACE(layers);
    ModelSpec s = small_spec(layers, tie);
    Model f32(test_ctx(), s, 21);
    s.weight_dtype = DType::f16;
    Model half(test_ctx(), s, 21);
    const auto p16 = half.parameters(), p32 = f32.parameters();
    ASSERT_EQ(p16.size(), p32.size());
    for (size_t i = 0; i < p16.size(); ++i) {
      const std::string& n = p16[i].name;
      const bool matrix = n.find("proj.weight") != std::string::npos || n.find("gate.weight") != std::string::npos ||
                          n.find(".experts.") != std::string::npos || n == "backbone.embeddings.weight" ||
                          n == "lm_head.weight";
      ASSERT_EQ(p16[i].tensor.dtype(), matrix ? DType::f16 : DType::f32) << n;
      ASSERT_TRUE(p16[i].tensor.requires_grad()) << n;
      if (!matrix) continue;
      ag::NoGradScope ng;
      const auto r = magellano::ops::cast(magellano::ops::cast(p32[i].tensor, DType::f16), DType::f32).to_host();
      ASSERT_EQ(r, p16[i].tensor.to_host()) << n << ": the fp16 weights are the f32 draws rounded";
      Tensor t = p32[i].tensor;
      t.copy_from_host(r.data(), r.size() * 4);
    }
    const int64_t B = 2, L = 13;
    const Tensor x = upload_i32(Shape{B, L}, random_ids(B * L, 97, 22)), y = upload_i32(Shape{B, L}, random_ids(B * L, 97, 23));
    auto run = [&](Model& m, const std::vector<magellano::nn::Parameter>& ps, int64_t k) {
      for (const auto& p : ps) p.tensor.meta()->grad_valid = false;
      m.set_checkpoint_every(k);
      auto out = m.loss(x, y);
      const float loss = out.loss.item();
      ag::backward(out.loss);
      std::vector<std::vector<float>> g;
      for (const auto& p : ps) g.push_back(p.tensor.grad().defined() ? p.tensor.grad().to_host() : std::vector<float>{});
      return std::make_pair(loss, g);
    };
    const auto [loss32, g32] = run(f32, p32, 0);
    for (int64_t k : {0, 2}) {
      const auto [loss16, g16] = run(half, p16, k);
      EXPECT_EQ(loss16, loss32) << "tie " << tie << " k " << k;
      for (size_t i = 0; i < p16.size(); ++i) {
        const std::string& n = p16[i].name;
        ASSERT_EQ(g16[i].size(), g32[i].size()) << n;
        if (p16[i].tensor.dtype() == DType::f32) {
          EXPECT_EQ(g16[i], g32[i]) << n << " k " << k;
          continue;
        }
        ASSERT_EQ(p16[i].tensor.grad().dtype(), DType::f16) << n;
        const int64_t D = s.dim;
        for (size_t j = 0; j < g32[i].size(); ++j) {
          const float want = magellano::io::f16_to_f32(magellano::io::f32_to_f16(g32[i][j]));
          if (tie && n == "backbone.embeddings.weight") {
            float row_max = 0;
            for (int64_t c = 0; c < D; ++c) row_max = std::max(row_max, std::fabs(g32[i][j / D * D + c]));
            ASSERT_LE(std::fabs(g16[i][j] - g32[i][j]), std::ldexp(row_max, -9) + std::ldexp(1.0f, -24))
                << n << "[" << j << "] k " << k;
          } else {
            ASSERT_EQ(g16[i][j], want) << n << "[" << j << "] k " << k;
          }
        }
      }
    }
  }
}

TEST(Model, Fp16WeightsWithLoRAAreRefused) {
  ModelSpec s = small_spec("ME");
  s.weight_dtype = DType::f16;
  s.lora.rank = 2;
  EXPECT_THROW(Model(test_ctx(), s, 1), magellano::Error);
}
