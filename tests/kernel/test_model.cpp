// The assembled model: Hugging Face names, step decoding = parallel forward through Mamba and
// MoE blocks, the loss at initialisation, and gradient descent lowering the loss.
#include <cmath>
#include <set>

#include "harness.hpp"
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
