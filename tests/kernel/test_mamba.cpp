// The Mamba mixer and block against a float64 reference composed from tests/support/reference
// (each piece verified on its own), with every parameter's gradient; the composition itself is
// checked by finite differences in check_op. Also: step-by-step decoding equals the parallel
// forward up to L = 1024, names and initialisation as upstream.
// Tolerances (the issue's): outputs relative 1e-4, gradients 1e-3. The mixer chains five GEMMs,
// a conv and an 11-step scan in fp32; observed errors are ~1e-6 relative.
#include <cmath>
#include <map>
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

// The layer under test: the mixer or the block (its RMSNorm), and Jamba's mixer options.
struct Options {
  bool block = false;
  bool norms = false;      // inner_norms: RMSNorms of dt, B, C
  bool bias = false;       // proj_bias: in_proj / out_proj biases
  bool conv_bias = true;
  double eps = 1e-5;       // norm_eps
  int skip_norm = -1;      // reference only: 0, 1 or 2 leaves out dt's, B's or C's norm
};

// Where each input sits (-1: absent). x is input 0, then the mixer's parameters in this order.
struct Layout {
  int in_proj, conv_w, conv_b = -1, x_proj, dt_w, dt_b, A_log, D, out_proj;
  int norm = -1, dt_ln = -1, b_ln = -1, c_ln = -1, in_b = -1, out_b = -1;
  int count = 1;
};
Layout layout_of(const Options& o) {
  Layout s;
  auto next = [&s] { return s.count++; };
  s.in_proj = next(), s.conv_w = next();
  if (o.conv_bias) s.conv_b = next();
  s.x_proj = next(), s.dt_w = next(), s.dt_b = next(), s.A_log = next(), s.D = next(), s.out_proj = next();
  if (o.block) s.norm = next();
  if (o.norms) s.dt_ln = next(), s.b_ln = next(), s.c_ln = next();
  if (o.bias) s.in_b = next(), s.out_b = next();
  return s;
}
const Vec kNone;
const Vec& at(const std::vector<Vec>& v, int i) { return i < 0 ? kNone : v[i]; }
Vec* grad_at(std::vector<Vec>& g, int i) { return i < 0 ? nullptr : &g[i]; }

// RMSNorm of x (rows, d) with weight slot i, or x itself without it; and its backward (+= dx).
Vec maybe_norm(const Vec& x, int64_t rows, int64_t d, const std::vector<Vec>& in, int i, double eps) {
  return i < 0 ? x : ref::rmsnorm(x, rows, d, in[i], eps);
}
void maybe_norm_bwd(const Vec& x, int64_t rows, int64_t d, const std::vector<Vec>& in, int i, double eps,
                    const Vec& dy, Vec& dx, std::vector<Vec>& g) {
  if (i < 0) {
    for (size_t k = 0; k < dx.size(); ++k) dx[k] += dy[k];
    return;
  }
  ref::rmsnorm_bwd(x, rows, d, in[i], eps, dy, dx, g[i]);
}

Vec mixer_ref(const Dims& s, const Options& o, const std::vector<Vec>& in, const Vec* dout,
              std::vector<Vec>* grads) {
  const Layout k = layout_of(o);
  const int64_t M = s.b * s.l, P = s.r + 2 * s.n;
  const Vec xn = maybe_norm(in[0], M, s.d, in, k.norm, o.eps);
  const Vec xz = ref::linear(xn, M, s.d, in[k.in_proj], 2 * s.e, at(in, k.in_b));
  const Vec xs = ref::cols(xz, M, 2 * s.e, 0, s.e), z = ref::cols(xz, M, 2 * s.e, s.e, s.e);
  const Vec pre = ref::conv(xs, s.b, s.l, s.e, in[k.conv_w], s.w, at(in, k.conv_b));
  const Vec xc = ref::silu(pre);
  const Vec dbl = ref::linear(xc, M, s.e, in[k.x_proj], P);
  const Vec dt = ref::cols(dbl, M, P, 0, s.r), Bm = ref::cols(dbl, M, P, s.r, s.n),
            Cm = ref::cols(dbl, M, P, s.r + s.n, s.n);
  // Jamba's inner norms (skip_norm leaves one out, to show the comparison would notice).
  const int dt_ln = o.skip_norm == 0 ? -1 : k.dt_ln, b_ln = o.skip_norm == 1 ? -1 : k.b_ln,
            c_ln = o.skip_norm == 2 ? -1 : k.c_ln;
  const Vec dtn = maybe_norm(dt, M, s.r, in, dt_ln, o.eps), Bn = maybe_norm(Bm, M, s.n, in, b_ln, o.eps),
            Cn = maybe_norm(Cm, M, s.n, in, c_ln, o.eps);
  const Vec delta = ref::linear(dtn, M, s.r, in[k.dt_w], s.e);
  Vec A = in[k.A_log];
  for (auto& a : A) a = -std::exp(a);
  const ref::ScanDims sd{s.b, s.l, s.e, s.n};
  const std::vector<Vec> scan_in = {xc, delta, A, Bn, Cn, in[k.D], z, in[k.dt_b]};
  const Vec y = ref::scan(sd, scan_in);
  Vec out = ref::linear(y, M, s.e, in[k.out_proj], s.d, at(in, k.out_b));
  if (o.block)
    for (size_t i = 0; i < out.size(); ++i) out[i] += in[0][i];
  if (!dout) return out;

  std::vector<Vec>& g = *grads;
  g.assign(in.size(), {});
  for (size_t i = 0; i < in.size(); ++i) g[i] = Vec(in[i].size(), 0.0);
  Vec dy(y.size(), 0.0);
  ref::linear_bwd(y, M, s.e, in[k.out_proj], s.d, *dout, dy, g[k.out_proj], grad_at(g, k.out_b));
  const auto gs = ref::scan_bwd(sd, scan_in, dy);
  g[k.D] = gs[5];
  g[k.dt_b] = gs[7];
  for (size_t i = 0; i < A.size(); ++i) g[k.A_log][i] = gs[2][i] * A[i];  // A = -exp(A_log)
  Vec ddtn(dtn.size(), 0.0), ddt(dt.size(), 0.0), dB(Bm.size(), 0.0), dC(Cm.size(), 0.0);
  Vec ddbl(dbl.size(), 0.0), dxc = gs[0];
  ref::linear_bwd(dtn, M, s.r, in[k.dt_w], s.e, gs[1], ddtn, g[k.dt_w]);
  maybe_norm_bwd(dt, M, s.r, in, dt_ln, o.eps, ddtn, ddt, g);
  maybe_norm_bwd(Bm, M, s.n, in, b_ln, o.eps, gs[3], dB, g);
  maybe_norm_bwd(Cm, M, s.n, in, c_ln, o.eps, gs[4], dC, g);
  ref::cols_bwd(ddbl, M, P, 0, s.r, ddt);
  ref::cols_bwd(ddbl, M, P, s.r, s.n, dB);
  ref::cols_bwd(ddbl, M, P, s.r + s.n, s.n, dC);
  ref::linear_bwd(xc, M, s.e, in[k.x_proj], P, ddbl, dxc, g[k.x_proj]);
  Vec dpre(pre.size(), 0.0), dxs(xs.size(), 0.0), dxz(xz.size(), 0.0), dxn(xn.size(), 0.0), no_bias;
  ref::silu_bwd(pre, dxc, dpre);
  ref::conv_bwd(xs, s.b, s.l, s.e, in[k.conv_w], s.w, dpre, dxs, g[k.conv_w], k.conv_b < 0 ? no_bias : g[k.conv_b]);
  ref::cols_bwd(dxz, M, 2 * s.e, 0, s.e, dxs);
  ref::cols_bwd(dxz, M, 2 * s.e, s.e, s.e, gs[6]);
  ref::linear_bwd(xn, M, s.d, in[k.in_proj], 2 * s.e, dxz, dxn, g[k.in_proj], grad_at(g, k.in_b));
  maybe_norm_bwd(in[0], M, s.d, in, k.norm, o.eps, dxn, g[0], g);
  if (o.block)
    for (size_t i = 0; i < g[0].size(); ++i) g[0][i] += (*dout)[i];
  return out;
}

MambaConfig config_of(const Dims& s, const Options& o, int chunk) {
  MambaConfig c;
  c.dim = s.d, c.d_state = s.n, c.d_conv = s.w, c.expand = s.e / s.d, c.dt_rank = s.r;
  c.scan_chunk = chunk;
  c.inner_norms = o.norms, c.proj_bias = o.bias, c.conv_bias = o.conv_bias;
  c.norm_eps = static_cast<float>(o.eps);
  return c;
}

std::vector<Input> random_inputs(const Dims& s, const Options& o, uint64_t seed) {
  const Layout k = layout_of(o);
  const int64_t P = s.r + 2 * s.n;
  Vec bdt = randn(s.e, seed + 7, 0.5), alog(s.e * s.n);
  for (auto& b : bdt) b -= 2.0;  // softplus(-2) ~ 0.13, a typical initial step size
  const Vec noise = randn(s.e * s.n, seed + 8, 0.1);
  for (int64_t i = 0; i < s.e * s.n; ++i) alog[i] = std::log(double(i % s.n + 1)) + noise[i];
  std::vector<Input> in(k.count);
  auto set = [&](int i, Shape shape, Vec v) {
    if (i >= 0) in[i] = {shape, std::move(v)};
  };
  set(0, Shape{s.b, s.l, s.d}, randn(s.b * s.l * s.d, seed));
  set(k.in_proj, Shape{2 * s.e, s.d}, randn(2 * s.e * s.d, seed + 1, 0.4));
  set(k.conv_w, Shape{s.e, 1, s.w}, randn(s.e * s.w, seed + 2, 0.4));
  set(k.conv_b, Shape{s.e}, randn(s.e, seed + 3, 0.1));
  set(k.x_proj, Shape{P, s.e}, randn(P * s.e, seed + 4, 0.3));
  set(k.dt_w, Shape{s.e, s.r}, randn(s.e * s.r, seed + 5, 0.5));
  set(k.dt_b, Shape{s.e}, bdt);
  set(k.A_log, Shape{s.e, s.n}, alog);
  set(k.D, Shape{s.e}, uniform(s.e, seed + 9, 0.5, 1.5));
  set(k.out_proj, Shape{s.d, s.e}, randn(s.d * s.e, seed + 10, 0.3));
  set(k.norm, Shape{s.d}, uniform(s.d, seed + 11, 0.5, 1.5));
  // Norm weights away from 1, so leaving one out changes the result.
  set(k.dt_ln, Shape{s.r}, uniform(s.r, seed + 12, 0.3, 1.7));
  set(k.b_ln, Shape{s.n}, uniform(s.n, seed + 13, 0.3, 1.7));
  set(k.c_ln, Shape{s.n}, uniform(s.n, seed + 14, 0.3, 1.7));
  set(k.in_b, Shape{2 * s.e}, randn(2 * s.e, seed + 15, 0.2));
  set(k.out_b, Shape{s.d}, randn(s.d, seed + 16, 0.2));
  return in;
}

void use_params(MambaMixer& m, const Layout& k, const std::vector<Tensor>& t) {
  auto opt = [&t](int i) { return i < 0 ? Tensor() : t[i]; };
  m.in_proj.weight = t[k.in_proj], m.conv_weight = t[k.conv_w], m.conv_bias = opt(k.conv_b);
  m.x_proj.weight = t[k.x_proj], m.dt_proj.weight = t[k.dt_w], m.dt_proj.bias = t[k.dt_b];
  m.A_log = t[k.A_log], m.D = t[k.D], m.out_proj.weight = t[k.out_proj];
  m.dt_norm = opt(k.dt_ln), m.b_norm = opt(k.b_ln), m.c_norm = opt(k.c_ln);
  m.in_proj.bias = opt(k.in_b), m.out_proj.bias = opt(k.out_b);
}

// The layer (block or mixer per o.block) built with `cfg` and the device inputs t as parameters.
Tensor layer_forward(const MambaConfig& cfg, const Options& o, const std::vector<Tensor>& t) {
  magellano::nn::Init init(1);
  const Layout k = layout_of(o);
  if (o.block) {
    MambaBlock layer(test_ctx(), cfg, init);
    use_params(layer.mixer, k, t);
    layer.norm.weight = t[k.norm];
    return layer.forward(t[0]);
  }
  MambaMixer layer(test_ctx(), cfg, init);
  use_params(layer, k, t);
  return layer.forward(t[0]);
}

std::string name_of(const Dims& s, const Options& o) {
  return std::string(o.block ? "MambaBlock" : "MambaMixer") + " L" + std::to_string(s.l) + " D" +
         std::to_string(s.d) + " N" + std::to_string(s.n) + (o.norms ? " inner_norms" : "") +
         (o.bias ? " proj_bias" : "") + (o.conv_bias ? "" : " no conv_bias");
}

void check_layer(const Dims& s, const Options& o, int chunk) {
  const MambaConfig cfg = config_of(s, o, chunk);
  check_op(name_of(s, o), random_inputs(s, o, 40 + s.l),
           [&](const std::vector<Tensor>& t) { return layer_forward(cfg, o, t); },
           [&](auto& in) { return mixer_ref(s, o, in, nullptr, nullptr); },
           [&](auto& in, const Vec& d) {
             std::vector<Vec> g;
             mixer_ref(s, o, in, &d, &g);
             return g;
           },
           Tolerance{.fwd_rtol = 1e-4, .fwd_atol = 1e-5, .grad_rtol = 1e-3, .grad_atol = 1e-4,
                     .fd_rtol = 1e-5, .fd_atol = 1e-7});
}

}  // namespace

TEST(Mamba, MixerMatchesReference) { check_layer({2, 11, 6, 12, 1, 4, 4}, {}, 4); }
TEST(Mamba, BlockMatchesReference) { check_layer({1, 9, 5, 10, 2, 16, 4}, {.block = true}, 64); }
TEST(Mamba, OtherConvWidthAndExpand) { check_layer({2, 5, 4, 12, 1, 3, 3}, {}, 2); }

// Jamba's mixer: the inner norms of dt, B, C (with their weights' gradients), in/out_proj biases,
// no conv bias; an eps other than the default so that norm_eps is seen to reach the norms.
TEST(Mamba, JambaInnerNormsMatchReference) {
  check_layer({2, 11, 6, 12, 3, 4, 4}, {.norms = true, .eps = 1e-3}, 4);
  check_layer({1, 9, 5, 10, 2, 16, 4}, {.block = true, .norms = true, .bias = true, .eps = 1e-3}, 64);
}
TEST(Mamba, JambaProjBiasAndNoConvBiasMatchReference) {
  check_layer({2, 5, 4, 12, 1, 3, 3}, {.bias = true, .conv_bias = false}, 2);
}

// The comparison above has teeth: a reference that leaves out any one of the three norms differs
// from the layer far beyond the tolerance (the norm weights are drawn away from 1).
TEST(Mamba, SkippingAnyInnerNormIsNoticed) {
  const Dims s{2, 11, 6, 12, 3, 4, 4};
  const Options o{.norms = true, .eps = 1e-3};
  const auto in = random_inputs(s, o, 51);
  std::vector<Vec> host;
  std::vector<Tensor> dev;
  for (const auto& i : in) host.push_back(i.values), dev.push_back(upload(i.shape, i.values));
  magellano::autograd::NoGradScope no_grad;
  const auto got = to_f64(layer_forward(config_of(s, o, 4), o, dev).to_host());
  const Vec want = mixer_ref(s, o, host, nullptr, nullptr);
  auto max_rel = [&](const Vec& r) {
    double worst = 0;
    for (size_t i = 0; i < r.size(); ++i) worst = std::max(worst, std::fabs(got[i] - r[i]) / std::max(1.0, std::fabs(r[i])));
    return worst;
  };
  EXPECT_LT(max_rel(want), 1e-4);
  for (int skip = 0; skip < 3; ++skip) {
    Options without = o;
    without.skip_norm = skip;
    EXPECT_GT(max_rel(mixer_ref(s, without, host, nullptr, nullptr)), 1e-2) << "norm " << skip << " left out";
  }
}

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

// Decoding with Jamba's options: step() applies the inner norms and biases exactly as forward()
// (weights away from their init so that a norm or bias missing from either path would show).
TEST(Mamba, JambaStepsEqualTheParallelForward) {
  MambaConfig c;
  c.dim = 8, c.d_state = 16, c.dt_rank = 3;  // E = 16
  c.inner_norms = true, c.proj_bias = true, c.norm_eps = 1e-4f;
  magellano::nn::Init init(4);
  MambaBlock blk(test_ctx(), c, init);
  uint64_t seed = 60;
  for (Tensor* t : {&blk.mixer.dt_norm, &blk.mixer.b_norm, &blk.mixer.c_norm})
    t->copy_from_host(to_f32(uniform(t->numel(), seed++, 0.3, 1.7)).data(), t->nbytes());
  for (Tensor* t : {&blk.mixer.in_proj.bias, &blk.mixer.out_proj.bias})
    t->copy_from_host(to_f32(randn(t->numel(), seed++, 0.2)).data(), t->nbytes());
  mgtest::expect_steps_match_parallel<MambaBlock, MambaState>(blk, randn(2 * 300 * 8, 6), 2, 300, 8, 200);
}

TEST(Mamba, JambaNamesAndInit) {
  MambaConfig c;
  c.dim = 20, c.d_state = 6, c.inner_norms = true, c.proj_bias = true, c.conv_bias = false;
  magellano::nn::Init init(7);
  MambaBlock blk(test_ctx(), c, init);
  std::map<std::string, magellano::nn::Parameter> params;
  for (const auto& p : blk.parameters("m.")) params.emplace(p.name, p);
  EXPECT_EQ(params.count("m.mixer.conv1d.bias"), 0u);
  const std::pair<const char*, int64_t> added[] = {{"m.mixer.dt_layernorm.weight", 2}, {"m.mixer.b_layernorm.weight", 6},
                                                   {"m.mixer.c_layernorm.weight", 6}, {"m.mixer.in_proj.bias", 80},
                                                   {"m.mixer.out_proj.bias", 20}};
  for (const auto& [name, n] : added) {
    ASSERT_EQ(params.count(name), 1u) << name;
    const auto& p = params.at(name);
    EXPECT_EQ(p.tensor.shape(), (Shape{n})) << name;
    EXPECT_FALSE(p.weight_decay) << name;
    EXPECT_TRUE(p.tensor.requires_grad()) << name;
    const float init_value = std::string(name).find("layernorm") != std::string::npos ? 1.0f : 0.0f;
    EXPECT_EQ(p.tensor.to_host(), std::vector<float>(n, init_value)) << name;
  }
  // The inner norms draw nothing from the generator: the other parameters are those without them.
  MambaConfig plain = c;
  plain.inner_norms = false;
  magellano::nn::Init init2(7);
  MambaBlock p(test_ctx(), plain, init2);
  EXPECT_EQ(p.mixer.x_proj.weight.to_host(), blk.mixer.x_proj.weight.to_host());
  EXPECT_EQ(p.mixer.A_log.to_host(), blk.mixer.A_log.to_host());
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
