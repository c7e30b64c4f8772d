// Gradient checkpointing: gradients bit-identical with and without it (every parameter, and
// LoRA adapters with dropout), the activation peak shrinking, and fp16 segment inputs (exactly
// an fp16-rounded embedding with one segment; half the kept bytes and close gradients with
// several).
// Tolerances: exact (memcmp of every gradient): the recompute replays the same kernels on the
// same inputs in the same order.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "harness.hpp"
#include "magellano/nn/model.hpp"
#include "magellano/ops/elementwise.hpp"
#include "small_model.hpp"

using namespace mgtest;
namespace nn = magellano::nn;
namespace ops = magellano::ops;
namespace ag = magellano::autograd;

namespace {

// Every gradient of `params` after one loss/backward, raw bytes.
std::vector<std::vector<float>> grads_of(nn::Model& m, const std::vector<nn::Parameter>& params, int64_t k) {
  for (const auto& p : params) p.tensor.meta()->grad_valid = false;
  m.set_checkpoint_every(k);
  const int64_t B = 2, L = 11;
  Tensor x = Tensor::from_host_i32(test_ctx(), Shape{B, L}, small_model_ids(B * L, 5));
  Tensor y = Tensor::from_host_i32(test_ctx(), Shape{B, L}, small_model_ids(B * L, 6));
  {
    nn::GenerationScope same(77);  // the same dropout masks in every run
    nn::TrainingScope training;
    auto lo = m.loss(x, y);
    ag::backward(lo.loss);
  }
  std::vector<std::vector<float>> g;
  for (const auto& p : params) g.push_back(p.tensor.grad().defined() ? p.tensor.grad().to_host() : std::vector<float>{});
  return g;
}

void expect_bitwise_equal(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b,
                          const std::vector<nn::Parameter>& params, int64_t k) {
  ASSERT_EQ(a.size(), b.size());
  size_t reached = 0;
  for (const auto& g : a) reached += !g.empty();
  EXPECT_GE(reached * 10, a.size() * 9) << "most parameters must receive a gradient for this to test anything";
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].size(), b[i].size()) << params[i].name << " k=" << k;
    EXPECT_EQ(std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(float)), 0)
        << params[i].name << " differs with checkpointing every " << k << " blocks";
  }
}

}  // namespace

TEST(Checkpointing, GradientsAreBitIdentical) {
  // Mamba and MoE blocks, full training (every parameter), segments of 1, 2 (balanced), 3, 4
  // (aggressive) and 8 blocks (the whole model, k larger than the layer count).
  nn::Model m(test_ctx(), small_model_spec("MEMMEM"), 9);
  const auto params = m.parameters();
  const auto ref = grads_of(m, params, 0);
  for (int64_t k : {1, 2, 3, 4, 8}) expect_bitwise_equal(ref, grads_of(m, params, k), params, k);
}

TEST(Checkpointing, LoRAGradientsWithDropoutAreBitIdentical) {
  nn::ModelSpec s = small_model_spec("MEME");
  s.lora.rank = 3, s.lora.dropout = 0.25, s.lora.targets = {"in_proj", "x_proj", "dt_proj", "out_proj", "gate", "experts"};
  nn::Model m(test_ctx(), s, 10);
  randomize_adapters(m, 90);
  const auto params = m.lora_parameters();
  const auto ref = grads_of(m, params, 0);
  for (int64_t k : {1, 2, 4}) expect_bitwise_equal(ref, grads_of(m, params, k), params, k);
}

TEST(Checkpointing, ActivationPeakShrinks) {
  nn::ModelSpec s = small_model_spec("MMMMMMMM");
  nn::Model m(test_ctx(), s, 12);
  const auto params = m.parameters();
  auto peak = [&](int64_t k) {
    grads_of(m, params, 0);  // warm-up: gradient buffers exist before measuring
    test_ctx().memory().reset_peaks();
    grads_of(m, params, k);
    return test_ctx().memory().peak(magellano::MemCategory::activations);
  };
  const uint64_t none = peak(0), balanced = peak(2), aggressive = peak(4);
  EXPECT_LT(balanced, none);
  EXPECT_LT(aggressive, none);
}

// fp16 segment inputs, exactly: with one segment over the whole model the only kept input is
// the embedding output, so the model equals the fp32 model whose embedding rows are rounded to
// fp16 (untied head). Loss and every gradient must be the same bits.
TEST(Checkpointing, Fp16InputsEqualAnFp16RoundedEmbedding) {
  nn::ModelSpec s = small_model_spec("MEMM");
  s.tie_embeddings = false;
  nn::Model half(test_ctx(), s, 13), rounded(test_ctx(), s, 13);
  half.set_checkpoint_inputs_fp16(true);
  for (auto p : rounded.parameters())
    if (p.name == "backbone.embeddings.weight") {
      ag::NoGradScope ng;
      const Tensor r = ops::cast(ops::cast(p.tensor, DType::f16), DType::f32);
      p.tensor.copy_from_host(r.to_host().data(), p.tensor.nbytes());
    }
  const auto params_half = half.parameters(), params_rounded = rounded.parameters();
  ASSERT_EQ(params_half.size(), params_rounded.size());
  EXPECT_TRUE(std::any_of(params_rounded.begin(), params_rounded.end(),
                          [](const nn::Parameter& p) { return p.name == "backbone.embeddings.weight"; }));
  expect_bitwise_equal(grads_of(rounded, params_rounded, 0), grads_of(half, params_half, 8), params_half, 8);
}

// Several segments: the kept inputs take half the bytes (measured by the tracker after the
// forward), and the gradients stay close to the fp32 ones: the residual stream is rounded to
// fp16 (relative error 2^-11) at 5 boundaries, so they may differ by a few 1e-3 of their norm.
TEST(Checkpointing, Fp16InputsHalveTheKeptBytesAndStayClose) {
  nn::ModelSpec s = small_model_spec("MEMMEM");
  nn::Model m(test_ctx(), s, 14);
  const auto params = m.parameters();
  const int64_t B = 2, L = 11, k = 1, segments = 6;
  auto kept_bytes = [&](bool fp16) {
    m.set_checkpoint_every(k);
    m.set_checkpoint_inputs_fp16(fp16);
    Tensor x = Tensor::from_host_i32(test_ctx(), Shape{B, L}, small_model_ids(B * L, 5));
    nn::TrainingScope training;
    const uint64_t before = test_ctx().memory().current(magellano::MemCategory::activations);
    auto out = m.forward(x);
    const uint64_t after = test_ctx().memory().current(magellano::MemCategory::activations);
    ag::clear_tape();
    return int64_t(after) - int64_t(before);
  };
  const int64_t saved = kept_bytes(false) - kept_bytes(true);
  EXPECT_EQ(saved, segments * B * L * s.dim * 2) << "each segment's input must be kept as fp16";
  m.set_checkpoint_inputs_fp16(false);
  const auto want = grads_of(m, params, k);
  m.set_checkpoint_inputs_fp16(true);
  const auto got = grads_of(m, params, k);
  double diff = 0, norm = 0;
  bool identical = true;
  for (size_t i = 0; i < want.size(); ++i)
    for (size_t j = 0; j < want[i].size(); ++j) {
      diff += (double(got[i][j]) - want[i][j]) * (double(got[i][j]) - want[i][j]);
      norm += double(want[i][j]) * want[i][j];
      identical &= got[i][j] == want[i][j];
    }
  EXPECT_FALSE(identical) << "the inputs must really be rounded";
  EXPECT_LT(std::sqrt(diff / norm), 1e-2);
  EXPECT_EQ(grads_of(m, params, k), got) << "fp16 inputs must stay deterministic";
}
