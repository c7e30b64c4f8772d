// The Mamba mixer and block against a float64 reference composed from tests/support/reference
// (each piece verified on its own), with every parameter's gradient; the composition itself is
// checked by finite differences in check_op. Also: step-by-step decoding equals the parallel
// forward up to L = 1024, names and initialisation as upstream.
// Tolerances (the issue's): outputs relative 1e-4, gradients 1e-3. The mixer chains five GEMMs,
// a conv and an 11-step scan in fp32; observed errors are ~1e-6 relative.
#include <cmath>
#include <set>

#include "harness.hpp"
#include "magellano/nn/mamba.hpp"
#include "reference.hpp"
#include "step_vs_parallel.hpp"

using namespace mgtest;
using magellano::nn::MambaBlock;
using magellano::nn::MambaConfig;
using magellano::nn::MambaMixer;
using magellano::nn::MambaState;
namespace ref = mgtest::ref;

namespace {

struct Dims {
  int64_t b, l, d, e, r, n, w;
};

// in = {x, in_proj, conv.w, conv.b, x_proj, dt_proj.w, dt_proj.b, A_log, D, out_proj[, norm.w]}
Vec mixer_ref(const Dims& s, const std::vector<Vec>& in, const Vec* dout, std::vector<Vec>* grads) {
  const bool block = in.size() == 11;
  const int64_t M = s.b * s.l, P = s.r + 2 * s.n;
  const Vec xn = block ? ref::rmsnorm(in[0], M, s.d, in[10], 1e-5) : in[0];
  const Vec xz = ref::linear(xn, M, s.d, in[1], 2 * s.e);
  const Vec xs = ref::cols(xz, M, 2 * s.e, 0, s.e), z = ref::cols(xz, M, 2 * s.e, s.e, s.e);
  const Vec pre = ref::conv(xs, s.b, s.l, s.e, in[2], s.w, in[3]);
  const Vec xc = ref::silu(pre);
  const Vec dbl = ref::linear(xc, M, s.e, in[4], P);
  const Vec dt = ref::cols(dbl, M, P, 0, s.r), Bm = ref::cols(dbl, M, P, s.r, s.n),
            Cm = ref::cols(dbl, M, P, s.r + s.n, s.n);
  const Vec delta = ref::linear(dt, M, s.r, in[5], s.e);
  Vec A = in[7];
  for (auto& a : A) a = -std::exp(a);
  const ref::ScanDims sd{s.b, s.l, s.e, s.n};
  const std::vector<Vec> scan_in = {xc, delta, A, Bm, Cm, in[8], z, in[6]};
  const Vec y = ref::scan(sd, scan_in);
  Vec out = ref::linear(y, M, s.e, in[9], s.d);
  if (block)
    for (size_t i = 0; i < out.size(); ++i) out[i] += in[0][i];
  if (!dout) return out;

  std::vector<Vec>& g = *grads;
  g.assign(in.size(), {});
  for (size_t k = 0; k < in.size(); ++k) g[k] = Vec(in[k].size(), 0.0);
  Vec dy(y.size(), 0.0);
  ref::linear_bwd(y, M, s.e, in[9], s.d, *dout, dy, g[9]);
  const auto gs = ref::scan_bwd(sd, scan_in, dy);
  g[8] = gs[5];
  g[6] = gs[7];
  for (size_t i = 0; i < A.size(); ++i) g[7][i] = gs[2][i] * A[i];  // A = -exp(A_log)
  Vec ddt(dt.size(), 0.0), ddbl(dbl.size(), 0.0), dxc = gs[0];
  ref::linear_bwd(dt, M, s.r, in[5], s.e, gs[1], ddt, g[5]);
  ref::cols_bwd(ddbl, M, P, 0, s.r, ddt);
  ref::cols_bwd(ddbl, M, P, s.r, s.n, gs[3]);
  ref::cols_bwd(ddbl, M, P, s.r + s.n, s.n, gs[4]);
  ref::linear_bwd(xc, M, s.e, in[4], P, ddbl, dxc, g[4]);
  Vec dpre(pre.size(), 0.0), dxs(xs.size(), 0.0), dxz(xz.size(), 0.0), dxn(xn.size(), 0.0);
  ref::silu_bwd(pre, dxc, dpre);
  ref::conv_bwd(xs, s.b, s.l, s.e, in[2], s.w, dpre, dxs, g[2], g[3]);
  ref::cols_bwd(dxz, M, 2 * s.e, 0, s.e, dxs);
  ref::cols_bwd(dxz, M, 2 * s.e, s.e, s.e, gs[6]);
  ref::linear_bwd(xn, M, s.d, in[1], 2 * s.e, dxz, dxn, g[1]);
  if (block) {
    ref::rmsnorm_bwd(in[0], M, s.d, in[10], 1e-5, dxn, g[0], g[10]);
    for (size_t i = 0; i < g[0].size(); ++i) g[0][i] += (*dout)[i];
  } else {
    g[0] = dxn;
  }
  return out;
}

MambaConfig config_of(const Dims& s, int chunk) {
  MambaConfig c;
  c.dim = s.d, c.d_state = s.n, c.d_conv = s.w, c.expand = s.e / s.d, c.dt_rank = s.r;
  c.scan_chunk = chunk;
  return c;
}

std::vector<Input> random_inputs(const Dims& s, bool block, uint64_t seed) {
  const int64_t P = s.r + 2 * s.n;
  Vec bdt = randn(s.e, seed + 7, 0.5), alog(s.e * s.n);
  for (auto& b : bdt) b -= 2.0;  // softplus(-2) ~ 0.13, a typical initial step size
  const Vec noise = randn(s.e * s.n, seed + 8, 0.1);
  for (int64_t i = 0; i < s.e * s.n; ++i) alog[i] = std::log(double(i % s.n + 1)) + noise[i];
  std::vector<Input> in = {
      {Shape{s.b, s.l, s.d}, randn(s.b * s.l * s.d, seed)},
      {Shape{2 * s.e, s.d}, randn(2 * s.e * s.d, seed + 1, 0.4)},
      {Shape{s.e, 1, s.w}, randn(s.e * s.w, seed + 2, 0.4)},
      {Shape{s.e}, randn(s.e, seed + 3, 0.1)},
      {Shape{P, s.e}, randn(P * s.e, seed + 4, 0.3)},
      {Shape{s.e, s.r}, randn(s.e * s.r, seed + 5, 0.5)},
      {Shape{s.e}, bdt},
      {Shape{s.e, s.n}, alog},
      {Shape{s.e}, uniform(s.e, seed + 9, 0.5, 1.5)},
      {Shape{s.d, s.e}, randn(s.d * s.e, seed + 10, 0.3)}};
  if (block) in.push_back({Shape{s.d}, uniform(s.d, seed + 11, 0.5, 1.5)});
  return in;
}

void use_params(MambaMixer& m, const std::vector<Tensor>& t) {
  m.in_proj.weight = t[1], m.conv_weight = t[2], m.conv_bias = t[3], m.x_proj.weight = t[4];
  m.dt_proj.weight = t[5], m.dt_proj.bias = t[6], m.A_log = t[7], m.D = t[8], m.out_proj.weight = t[9];
}

void check_layer(const Dims& s, bool block, int chunk) {
  magellano::nn::Init init(1);
  const MambaConfig cfg = config_of(s, chunk);
  check_op(std::string(block ? "MambaBlock" : "MambaMixer") + " L" + std::to_string(s.l) +
               " D" + std::to_string(s.d) + " N" + std::to_string(s.n),
           random_inputs(s, block, 40 + s.l),
           [&](const std::vector<Tensor>& t) {
             if (block) {
               MambaBlock layer(test_ctx(), cfg, init);
               use_params(layer.mixer, t);
               layer.norm.weight = t[10];
               return layer.forward(t[0]);
             }
             MambaMixer layer(test_ctx(), cfg, init);
             use_params(layer, t);
             return layer.forward(t[0]);
           },
           [&](auto& in) { return mixer_ref(s, in, nullptr, nullptr); },
           [&](auto& in, const Vec& d) {
             std::vector<Vec> g;
             mixer_ref(s, in, &d, &g);
             return g;
           },
           Tolerance{.fwd_rtol = 1e-4, .fwd_atol = 1e-5, .grad_rtol = 1e-3, .grad_atol = 1e-4,
                     .fd_rtol = 1e-5, .fd_atol = 1e-7});
}

}  // namespace

TEST(Mamba, MixerMatchesReference) { check_layer({2, 11, 6, 12, 1, 4, 4}, false, 4); }
TEST(Mamba, BlockMatchesReference) { check_layer({1, 9, 5, 10, 2, 16, 4}, true, 64); }
TEST(Mamba, OtherConvWidthAndExpand) { check_layer({2, 5, 4, 12, 1, 3, 3}, false, 2); }

TEST(Mamba, NamesInitAndWeightDecayGroupsAsUpstream) {
  MambaConfig c;
  c.dim = 20, c.num_layers = 4;
  magellano::nn::Init init(7);
  MambaBlock blk(test_ctx(), c, init);
  const auto params = blk.parameters("backbone.layers.3.");
  std::set<std::string> names, no_decay;
  for (const auto& p : params) {
    names.insert(p.name);
    if (!p.weight_decay) no_decay.insert(p.name);
  }
  const std::string m = "backbone.layers.3.mixer.";
  EXPECT_EQ(names, (std::set<std::string>{"backbone.layers.3.norm.weight", m + "in_proj.weight",
                                          m + "conv1d.weight", m + "conv1d.bias", m + "x_proj.weight",
                                          m + "dt_proj.weight", m + "dt_proj.bias", m + "A_log", m + "D",
                                          m + "out_proj.weight"}));
  EXPECT_EQ(no_decay, (std::set<std::string>{"backbone.layers.3.norm.weight", m + "conv1d.bias",
                                             m + "dt_proj.bias", m + "A_log", m + "D"}));
  // E = 40, R = ceil(20/16) = 2, N = 16: shapes as PyTorch stores them.
  EXPECT_EQ(blk.mixer.in_proj.weight.shape(), (Shape{80, 20}));
  EXPECT_EQ(blk.mixer.conv_weight.shape(), (Shape{40, 1, 4}));
  EXPECT_EQ(blk.mixer.x_proj.weight.shape(), (Shape{34, 40}));
  EXPECT_EQ(blk.mixer.dt_proj.weight.shape(), (Shape{40, 2}));
  EXPECT_EQ(blk.mixer.out_proj.weight.shape(), (Shape{20, 40}));
  const auto alog = blk.mixer.A_log.to_host();
  for (int64_t i = 0; i < 40 * 16; ++i) EXPECT_FLOAT_EQ(alog[i], std::log(float(i % 16 + 1)));
  EXPECT_EQ(blk.mixer.D.to_host(), std::vector<float>(40, 1.0f));
  for (float b : blk.mixer.dt_proj.bias.to_host()) {  // softplus(bias) is the initial step
    const double dt = std::log1p(std::exp(double(b)));
    EXPECT_GE(dt, 0.001 * 0.999);
    EXPECT_LE(dt, 0.1 * 1.001);
  }
  double max_out = 0;  // out_proj ~ U(±1/sqrt(E)) / sqrt(num_layers)
  for (float w : blk.mixer.out_proj.weight.to_host()) max_out = std::max(max_out, double(std::fabs(w)));
  EXPECT_LE(max_out, 1.0 / std::sqrt(40.0) / 2.0);
  EXPECT_GT(max_out, 0.8 / std::sqrt(40.0) / 2.0);
}

TEST(Mamba, StepsEqualTheParallelForwardUpTo1024) {
  MambaConfig c;
  c.dim = 8, c.d_state = 16;  // E = 16, R = 1
  magellano::nn::Init init(3);
  MambaBlock blk(test_ctx(), c, init);
  // Every position stepped from an empty state, and the rest of the sequence after a parallel
  // prefill of 700 positions.
  mgtest::expect_steps_match_parallel<MambaBlock, MambaState>(blk, randn(2 * 1024 * 8, 5), 2, 1024, 8, 700);
}

TEST(Mamba, SavedActivationsAreLinearInLengthWithoutTheFullState) {
  // The forward keeps O(B·L·E) floats: the scan saves states every 64 steps, never (B, L, E, N).
  MambaConfig c;
  c.dim = 32, c.d_state = 16;  // E = 64
  magellano::nn::Init init(9);
  auto ctx = Context::create(test_ctx().device());
  MambaMixer m(*ctx, c, init);
  auto saved_bytes = [&](int64_t L) {
    Tensor x = Tensor::from_host(*ctx, Shape{2, L, 32}, std::vector<float>(2 * L * 32, 0.1f));
    const uint64_t before = ctx->memory().current(magellano::MemCategory::activations);
    Tensor y = m.forward(x);
    const uint64_t after = ctx->memory().current(magellano::MemCategory::activations);
    magellano::autograd::clear_tape();
    return double(after - before);
  };
  const double s512 = saved_bytes(512), s1024 = saved_bytes(1024);
  const double ble_bytes = 2.0 * 1024 * 64 * 4;  // B·L·E floats at L = 1024
  EXPECT_NEAR(s1024 / s512, 2.0, 0.05) << "saved activations must grow linearly in L";
  // About 9·B·L·E floats are saved; the full state alone would be N = 16 times B·L·E.
  EXPECT_LT(s1024, 12 * ble_bytes) << "the forward saved " << s1024 / ble_bytes << " x B·L·E floats";
}
