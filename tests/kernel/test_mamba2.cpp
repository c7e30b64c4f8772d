// The Mamba2 block against its float64 reference (tests/support/mamba2_reference.hpp, composed
// from the op references), forward and every parameter's gradient, at odd sizes: several
// groups, a length that is not a multiple of the chunk, biases on and off, an active
// time_step_limit. Also: step-by-step decoding equals the parallel forward (outputs and both
// states), names, shapes, initialisation and weight-decay groups as Hugging Face's, and
// configs the layer cannot run give one clear error.
// Tolerances: outputs relative 1e-4 (abs 1e-5), gradients 1e-3 (abs 1e-4), as the Mamba block's:
// the block chains two GEMMs, a conv, the chunked scan and two norms in fp32; the scan's
// chunked sums differ from the sequential reference by rounding only (~1e-6 relative seen).
#include <cmath>
#include <set>

#include "error_text.hpp"
#include "harness.hpp"
#include "magellano/nn/mamba2.hpp"
#include "mamba2_reference.hpp"
#include "step_vs_parallel.hpp"

using namespace mgtest;
using magellano::nn::Mamba2Block;
using magellano::nn::Mamba2Config;
using magellano::nn::Mamba2State;
namespace ref = mgtest::ref;

namespace {

Mamba2Config config_of(const ref::Mamba2Dims& s, int chunk) {
  Mamba2Config c;
  c.dim = s.d, c.expand = s.di / s.d, c.head_dim = s.p, c.n_groups = s.g, c.d_state = s.n, c.d_conv = s.k;
  c.bias = s.bias, c.conv_bias = s.conv_bias, c.chunk = chunk;
  c.dt_lo = static_cast<float>(s.lo), c.dt_hi = static_cast<float>(s.hi);
  return c;
}

// The block's parameter tensors in Mamba2Weights::fields order.
std::vector<Tensor*> block_tensors(Mamba2Block& b, const ref::Mamba2Dims& s) {
  auto& m = b.mixer;
  std::vector<Tensor*> t = {&b.norm.weight, &m.in_proj.weight};
  if (s.bias) t.push_back(&m.in_proj.bias);
  t.push_back(&m.conv_weight);
  if (s.conv_bias) t.push_back(&m.conv_bias);
  for (Tensor* p : {&m.dt_bias, &m.A_log, &m.D, &m.norm_weight, &m.out_proj.weight}) t.push_back(p);
  if (s.bias) t.push_back(&m.out_proj.bias);
  return t;
}

// Inputs: x, then the weights in fields order.
ref::Mamba2Weights weights_of(const ref::Mamba2Dims& s, const std::vector<Vec>& in) {
  ref::Mamba2Weights w;
  auto fields = w.fields(s);
  for (size_t i = 0; i < fields.size(); ++i) *fields[i].values = in[i + 1];
  return w;
}

void check_block(const ref::Mamba2Dims& s, int chunk, uint64_t seed) {
  ref::Mamba2Weights w0 = ref::random_mamba2_weights(s, seed);
  std::vector<Input> inputs = {{Shape{s.b, s.l, s.d}, randn(s.b * s.l * s.d, seed + 20)}};
  for (const auto& f : w0.fields(s)) inputs.push_back({Shape(f.shape), *f.values});
  magellano::nn::Init init(1);
  const Mamba2Config cfg = config_of(s, chunk);
  check_op("Mamba2Block L" + std::to_string(s.l) + " Di" + std::to_string(s.di) + " G" + std::to_string(s.g) +
               " chunk " + std::to_string(chunk),
           inputs,
           [&](const std::vector<Tensor>& t) {
             Mamba2Block layer(test_ctx(), cfg, init);
             const auto params = block_tensors(layer, s);
             for (size_t i = 0; i < params.size(); ++i) *params[i] = t[i + 1];
             return layer.forward(t[0]);
           },
           [&](auto& in) { return ref::mamba2_block(s, weights_of(s, in), in[0]); },
           [&](auto& in, const Vec& d) {
             ref::Mamba2Weights w = weights_of(s, in), dw;
             std::vector<Vec> g = {ref::mamba2_block_bwd(s, w, in[0], d, dw)};
             for (const auto& f : dw.fields(s)) g.push_back(*f.values);
             return g;
           },
           Tolerance{.fwd_rtol = 1e-4, .fwd_atol = 1e-5, .grad_rtol = 1e-3, .grad_atol = 1e-4,
                     .fd_rtol = 1e-5, .fd_atol = 1e-7});
}

}  // namespace

// b, l, d, di, p, g, n, k: 4 heads of 3 in 2 groups, L 13 over chunks of 4 (the last one short).
TEST(Mamba2, BlockMatchesReference) { check_block({2, 13, 6, 12, 3, 2, 5, 4}, 4, 30); }

TEST(Mamba2, BlockWithBiasesAndAClampMatchesReference) {
  ref::Mamba2Dims s{1, 11, 5, 10, 5, 1, 8, 3};  // 2 heads of 5, one group, conv width 3
  s.bias = true, s.lo = 0.05, s.hi = 0.3;      // the clamp is active on both sides
  check_block(s, 0, 31);                       // the device's default chunk (cut to 16)
}

TEST(Mamba2, BlockWithoutConvBiasManyGroupsMatchesReference) {
  ref::Mamba2Dims s{2, 9, 4, 16, 2, 4, 3, 4};  // 8 heads of 2, 4 groups, N 3
  s.conv_bias = false;
  check_block(s, 8, 32);
}

TEST(Mamba2, NamesShapesInitAndWeightDecayAsHuggingFace) {
  Mamba2Config c;
  c.dim = 24, c.head_dim = 8, c.n_groups = 2, c.d_state = 16, c.num_layers = 4, c.bias = true;
  magellano::nn::Init init(7);
  Mamba2Block blk(test_ctx(), c, init);
  std::set<std::string> names, no_decay;
  for (const auto& p : blk.parameters("backbone.layers.3.")) {
    names.insert(p.name);
    if (!p.weight_decay) no_decay.insert(p.name);
  }
  const std::string m = "backbone.layers.3.mixer.";
  EXPECT_EQ(names, (std::set<std::string>{"backbone.layers.3.norm.weight", m + "in_proj.weight", m + "in_proj.bias",
                                          m + "conv1d.weight", m + "conv1d.bias", m + "dt_bias", m + "A_log", m + "D",
                                          m + "norm.weight", m + "out_proj.weight", m + "out_proj.bias"}));
  EXPECT_EQ(no_decay, (std::set<std::string>{"backbone.layers.3.norm.weight", m + "in_proj.bias", m + "conv1d.bias",
                                             m + "dt_bias", m + "A_log", m + "D", m + "norm.weight",
                                             m + "out_proj.bias"}));
  // Di = 48, H = 6, C = 48 + 2·2·16 = 112: shapes as PyTorch stores them.
  EXPECT_EQ(blk.mixer.in_proj.weight.shape(), (Shape{48 + 112 + 6, 24}));
  EXPECT_EQ(blk.mixer.conv_weight.shape(), (Shape{112, 1, 4}));
  EXPECT_EQ(blk.mixer.out_proj.weight.shape(), (Shape{24, 48}));
  EXPECT_EQ(blk.mixer.norm_weight.shape(), (Shape{48}));
  const auto alog = blk.mixer.A_log.to_host();
  ASSERT_EQ(alog.size(), 6u);
  for (int64_t h = 0; h < 6; ++h) EXPECT_FLOAT_EQ(alog[h], std::log(float(h + 1)));  // A = -(1..H)
  EXPECT_EQ(blk.mixer.D.to_host(), std::vector<float>(6, 1.0f));
  EXPECT_EQ(blk.mixer.norm_weight.to_host(), std::vector<float>(48, 1.0f));
  EXPECT_EQ(blk.mixer.in_proj.bias.to_host(), std::vector<float>(166, 0.0f));
  EXPECT_EQ(blk.mixer.out_proj.bias.to_host(), std::vector<float>(24, 0.0f));
  for (float b : blk.mixer.dt_bias.to_host()) {  // softplus(dt_bias) is the initial step
    const double dt = std::log1p(std::exp(double(b)));
    EXPECT_GE(dt, 0.001 * 0.999);
    EXPECT_LE(dt, 0.1 * 1.001);
  }
  double max_out = 0;  // out_proj ~ U(±1/sqrt(Di)) / sqrt(num_layers)
  for (float w : blk.mixer.out_proj.weight.to_host()) max_out = std::max(max_out, double(std::fabs(w)));
  EXPECT_LE(max_out, 1.0 / std::sqrt(48.0) / 2.0);
  EXPECT_GT(max_out, 0.8 / std::sqrt(48.0) / 2.0);
  c.conv_bias = false, c.bias = false;
  Mamba2Block plain(test_ctx(), c, init);
  std::set<std::string> plain_names;
  for (const auto& p : plain.parameters()) plain_names.insert(p.name);
  EXPECT_EQ(plain_names, (std::set<std::string>{"norm.weight", "mixer.in_proj.weight", "mixer.conv1d.weight",
                                                "mixer.dt_bias", "mixer.A_log", "mixer.D", "mixer.norm.weight",
                                                "mixer.out_proj.weight"}));
}

// Decoding from the conv window and the SSM state: every position stepped from an empty state,
// and the rest of the sequence after a parallel prefill, equal the parallel forward; the states
// after the whole sequence equal what the parallel forward leaves. L = 300 crosses several
// chunks of 64 and ends inside one; the clamp is active.
TEST(Mamba2, StepsEqualTheParallelForward) {
  Mamba2Config c;
  c.dim = 8, c.head_dim = 4, c.n_groups = 2, c.d_state = 16;  // Di 16, H 4, C 80
  c.dt_lo = 0.002f, c.dt_hi = 0.05f;
  magellano::nn::Init init(3);
  Mamba2Block blk(test_ctx(), c, init);
  const int64_t B = 2;
  mgtest::expect_steps_match_parallel<Mamba2Block, Mamba2State>(
      blk, randn(B * 300 * 8, 5), B, 300, 8, 200, [&](const Mamba2State& prefilled) {
        EXPECT_EQ(prefilled.conv.shape(), (Shape{B, 80, 3}));
        EXPECT_EQ(prefilled.ssm.shape(), (Shape{B, 4, 4, 16}));
      });
}

TEST(Mamba2, ConfigsTheLayerCannotRunAreOneClearError) {
  magellano::nn::Init init(1);
  Mamba2Config c;
  c.dim = 20, c.head_dim = 16;  // Di 40
  EXPECT_TRUE(has(error_of([&] { Mamba2Block(test_ctx(), c, init); }),
                  "Mamba2 config: head_dim 16 does not divide the inner width 40"));
  c.head_dim = 8, c.n_groups = 3;  // H 5
  EXPECT_TRUE(has(error_of([&] { Mamba2Block(test_ctx(), c, init); }),
                  "Mamba2 config: n_groups 3 does not divide the 5 heads"));
  c.n_groups = 5, c.dt_lo = 0.2f, c.dt_hi = 0.1f;
  EXPECT_TRUE(has(error_of([&] { Mamba2Block(test_ctx(), c, init); }), "time_step_limit must satisfy 0 <= lo < hi"));
}
