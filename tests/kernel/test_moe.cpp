// The MoE layer (router, softmax, top-k in each routing mode: softmax_topk renormalised or not,
// topk_softmax; SwiGLU / GELU experts, the shared expert, combine, balance and z losses) against a
// float64 reference composed from the ops' references (tests/support/
// reference.hpp), forward and every parameter's gradient, the reference gradient itself checked
// by central finite differences.
//
// Routing margin: top-k is piecewise, so inputs are drawn (seed search) until every token's K-th
// and (K+1)-th router probabilities differ by more than 1e-4: a finite-difference step (1e-6
// relative) or fp32 rounding (~1e-7 on a probability) then cannot cross a routing boundary.
//
// Tolerances (fp32 device vs float64): outputs rtol 1e-4, atol 1e-5 (each output is two GEMM
// chains of depth <= 24 plus a softmax; observed errors are ~1e-6). Gradients rtol 1e-3, atol
// 1e-4 * max|reference gradient| (the router gradient is a difference of nearly equal products,
// (dw - Σ dw·w) / S, whose cancellation loses ~2 digits relative to its inputs; still 2x tighter
// than mamba_ssm's own fp32 rtol 6e-4 / atol 2e-3 in absolute terms). Reference vs finite
// differences: rtol 1e-5, atol 1e-7.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "harness.hpp"
#include "magellano/nn/moe.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/reduce.hpp"
#include "reference.hpp"

using namespace mgtest;
namespace ops = magellano::ops;
namespace nn = magellano::nn;

namespace {

struct Cfg {
  int64_t n, d, f, x, k;
  bool glu = true;
  double bc = 0.01, zc = 0.001;
  nn::MoERouter router = nn::MoERouter::softmax_topk;
  bool renorm = true;  // normalize_top_k
  int64_t fs = 0;      // shared expert hidden; 0 = none
  std::string str() const {
    return "n" + std::to_string(n) + " d" + std::to_string(d) + " f" + std::to_string(f) + " x" +
           std::to_string(x) + " k" + std::to_string(k) + (glu ? " swiglu" : " gelu") +
           (router == nn::MoERouter::topk_softmax ? " topk_softmax" : renorm ? "" : " no-renorm") +
           (fs ? " shared " + std::to_string(fs) : "");
  }
  bool logits_route() const { return router == nn::MoERouter::topk_softmax; }
  ops::TopKWeights mode() const {
    return logits_route() ? ops::TopKWeights::softmax : renorm ? ops::TopKWeights::renorm : ops::TopKWeights::raw;
  }
};

// Parameters, flat: P[0] = x (N, D), P[1] = gate (X, D), then w1[X] (F, D), w2[X] (D, F),
// w3[X] (F, D) (SwiGLU only), then the shared expert's w1 (Fs, D), w2 (D, Fs), w3 (Fs, D).
size_t iw1(const Cfg&, int64_t e) { return 2 + e; }
size_t iw2(const Cfg& c, int64_t e) { return 2 + c.x + e; }
size_t iw3(const Cfg& c, int64_t e) { return 2 + 2 * c.x + e; }
size_t is1(const Cfg& c) { return 2 + (c.glu ? 3 : 2) * c.x; }  // then is1 + 1 (w2), is1 + 2 (w3)

std::vector<Vec> make_params(const Cfg& c, uint64_t seed, double gate_scale = 2.0) {
  std::vector<Vec> p = {randn(c.n * c.d, seed), randn(c.x * c.d, seed + 1, gate_scale / std::sqrt(double(c.d)))};
  for (int which = 0; which < (c.glu ? 3 : 2); ++which)
    for (int64_t e = 0; e < c.x; ++e) {
      const int64_t in = which == 1 ? c.f : c.d;
      const double b = 1.0 / std::sqrt(double(in));
      p.push_back(uniform(c.f * c.d, seed + 100 + 10 * which + e, -b, b));
    }
  for (int which = 0; c.fs && which < (c.glu ? 3 : 2); ++which) {
    const double b = 1.0 / std::sqrt(double(which == 1 ? c.fs : c.d));
    p.push_back(uniform(c.fs * c.d, seed + 200 + which, -b, b));
  }
  return p;
}

// One expert on one token row xr (ref::expert_row: h1, h3, a (F), y (D)).
void expert_fwd(const Cfg& c, const std::vector<Vec>& P, int64_t e, const double* xr, ref::ExpertRow& row) {
  ref::expert_row(xr, c.d, c.f, P[iw1(c, e)], P[iw2(c, e)], c.glu ? &P[iw3(c, e)] : nullptr, row);
}

// The shared expert on one token row (Fs hidden).
void shared_fwd(const Cfg& c, const std::vector<Vec>& P, const double* xr, ref::ExpertRow& row) {
  ref::expert_row(xr, c.d, c.fs, P[is1(c)], P[is1(c) + 1], c.glu ? &P[is1(c) + 2] : nullptr, row);
}

// Every token's router state, from the ops' references: logits = x · gateᵀ, probs = softmax,
// the top K (sel) of the routing scores (logits for topk_softmax, else probs) and their weights.
struct Router {
  Vec logits, probs, weights;         // (N, X), (N, X), (N, K)
  std::vector<std::vector<int>> sel;  // (N, K) expert ids
  const Vec& scores(const Cfg& c) const { return c.logits_route() ? logits : probs; }
};

Router route(const Cfg& c, const std::vector<Vec>& P) {
  Router r;
  r.logits = ref::linear(P[0], c.n, c.d, P[1], c.x);
  r.probs = ref::softmax(r.logits, c.x);
  r.weights = ref::topk_weights(r.scores(c), c.n, c.x, c.k, c.mode());
  for (int64_t n = 0; n < c.n; ++n) r.sel.push_back(ref::topk(&r.scores(c)[n * c.x], c.x, c.k));
  return r;
}

struct RefOut {
  Vec out;
  double bal = 0, z = 0, aux = 0, margin = 1e30;
  std::vector<int32_t> counts;
};

RefOut ref_forward(const Cfg& c, const std::vector<Vec>& P) {
  RefOut o;
  o.out.assign(c.n * c.d, 0);
  o.counts.assign(c.x, 0);
  const Router r = route(c, P);
  ref::ExpertRow row;
  for (int64_t n = 0; n < c.n; ++n) {
    if (c.k < c.x) {
      Vec ps(r.probs.begin() + n * c.x, r.probs.begin() + (n + 1) * c.x);
      std::sort(ps.rbegin(), ps.rend());
      o.margin = std::min(o.margin, ps[c.k - 1] - ps[c.k]);
    }
    for (int64_t k = 0; k < c.k; ++k) {
      const int e = r.sel[n][k];
      expert_fwd(c, P, e, &P[0][n * c.d], row);
      for (int64_t j = 0; j < c.d; ++j) o.out[n * c.d + j] += r.weights[n * c.k + k] * row.y[j];
      o.counts[e]++;
    }
    if (c.fs) {
      shared_fwd(c, P, &P[0][n * c.d], row);
      for (int64_t j = 0; j < c.d; ++j) o.out[n * c.d + j] += row.y[j];
    }
  }
  o.bal = ref::balance_loss(r.probs, Vec(o.counts.begin(), o.counts.end()), c.n, c.x, c.k)[0];
  o.z = ref::z_loss(r.logits, c.n, c.x)[0];
  o.aux = c.bc * o.bal + c.zc * o.z;
  return o;
}

// The loss whose gradients are compared: L = Σ out · dout + daux · aux.
double ref_loss(const Cfg& c, const std::vector<Vec>& P, const Vec& dout, double daux) {
  RefOut o = ref_forward(c, P);
  double s = daux * o.aux;
  for (size_t i = 0; i < dout.size(); ++i) s += o.out[i] * dout[i];
  return s;
}

// The ops' backward references in reverse: experts (with dy = w · dout), then the mixing
// weights through top-k, the balance loss into the probabilities, softmax and the z-loss into
// the logits, and the router's linear into x and the gate.
std::vector<Vec> ref_backward(const Cfg& c, const std::vector<Vec>& P, const Vec& dout,
                              double daux) {
  const RefOut fo = ref_forward(c, P);
  const Router r = route(c, P);
  std::vector<Vec> g;
  for (const auto& t : P) g.push_back(Vec(t.size(), 0.0));
  Vec dw(c.n * c.k, 0.0), dy(c.d);
  ref::ExpertRow row;
  for (int64_t n = 0; n < c.n; ++n) {
    const double* xr = &P[0][n * c.d];
    const double* go = &dout[n * c.d];
    for (int64_t k = 0; k < c.k; ++k) {
      const int e = r.sel[n][k];
      expert_fwd(c, P, e, xr, row);
      for (int64_t j = 0; j < c.d; ++j) dw[n * c.k + k] += go[j] * row.y[j], dy[j] = r.weights[n * c.k + k] * go[j];
      ref::expert_row_bwd(xr, c.d, c.f, P[iw1(c, e)], P[iw2(c, e)], c.glu ? &P[iw3(c, e)] : nullptr, row,
                          dy.data(), &g[0][n * c.d], g[iw1(c, e)], g[iw2(c, e)], c.glu ? &g[iw3(c, e)] : nullptr);
    }
    if (c.fs) {
      shared_fwd(c, P, xr, row);
      const size_t s = is1(c);
      ref::expert_row_bwd(xr, c.d, c.fs, P[s], P[s + 1], c.glu ? &P[s + 2] : nullptr, row, go, &g[0][n * c.d],
                          g[s], g[s + 1], c.glu ? &g[s + 2] : nullptr);
    }
  }
  Vec dp(c.n * c.x, 0.0), dl(c.n * c.x, 0.0);
  ref::topk_weights_bwd(r.scores(c), c.n, c.x, c.k, c.mode(), dw, c.logits_route() ? dl : dp);
  ref::balance_loss_bwd(Vec(fo.counts.begin(), fo.counts.end()), c.n, c.x, c.k, {daux * c.bc}, dp);
  ref::softmax_bwd(r.logits, c.x, dp, dl);
  ref::z_loss_bwd(r.logits, c.n, c.x, {daux * c.zc}, dl);
  ref::linear_bwd(P[0], c.n, c.d, P[1], c.x, dl, g[0], g[1]);
  return g;
}

// Parameters and a margin-respecting draw: seeds from `seed` up until the routing margin holds.
std::vector<Vec> params_with_margin(const Cfg& c, uint64_t seed) {
  for (uint64_t s = seed; s < seed + 400; ++s) {
    auto P = make_params(c, s * 7919);
    if (ref_forward(c, P).margin > 1e-4) return P;
  }
  ADD_FAILURE() << c.str() << ": no seed gave a routing margin of 1e-4";
  return make_params(c, seed);
}

nn::MoEConfig moe_config(const Cfg& c) {
  return nn::MoEConfig{.dim = c.d, .hidden = c.f, .experts = c.x, .top_k = c.k, .swiglu = c.glu,
                       .balance_coef = float(c.bc), .z_coef = float(c.zc), .router = c.router,
                       .normalize_top_k = c.renorm, .shared_hidden = c.fs};
}

void upload_into(const Tensor& t, const Vec& v) {
  auto f = to_f32(v);
  Tensor handle = t;  // a handle to the same tensor
  handle.copy_from_host(f.data(), f.size() * sizeof(float));
}

void load(const nn::MoE& moe, const Cfg& c, const std::vector<Vec>& P) {
  upload_into(moe.gate.weight, P[1]);
  for (int64_t e = 0; e < c.x; ++e) {
    upload_into(moe.experts[e].w1->weight, P[iw1(c, e)]);
    upload_into(moe.experts[e].w2->weight, P[iw2(c, e)]);
    if (c.glu) upload_into(moe.experts[e].w3->weight, P[iw3(c, e)]);
  }
  if (c.fs) {
    upload_into(moe.shared_expert->w1->weight, P[is1(c)]);
    upload_into(moe.shared_expert->w2->weight, P[is1(c) + 1]);
    if (c.glu) upload_into(moe.shared_expert->w3->weight, P[is1(c) + 2]);
  }
}

struct DevOut {
  std::vector<float> out;
  float bal, z, aux;
  std::vector<int32_t> counts;
  std::vector<std::vector<float>> grads;  // same order as P; empty when not reached
};

std::vector<float> grad_of(const Tensor& t) {
  return t.grad().defined() ? t.grad().to_host() : std::vector<float>{};
}

// loss = Σ out · dout + daux · aux (aux_only: loss = aux).
DevOut run_device(const Cfg& c, const std::vector<Vec>& P, const Vec& dout, double daux,
                  bool aux_only = false, Shape xshape = Shape()) {
  magellano::nn::Init init(1);
  nn::MoE moe(test_ctx(), moe_config(c), init);
  load(moe, c, P);
  Tensor x = upload(xshape.ndim() ? xshape : Shape{c.n, c.d}, P[0], true);
  auto o = moe.forward(x);
  DevOut d{o.out.to_host(), o.balance_loss.item(), o.z_loss.item(), o.aux_loss.item(),
           o.expert_counts.to_host_i32(), {}};
  Tensor loss = aux_only ? o.aux_loss
                         : ops::add(ops::sum(ops::mul(o.out, upload(o.out.shape(), dout))),
                                    o.aux_loss, float(daux));
  magellano::autograd::backward(loss);
  d.grads.push_back(grad_of(x));
  d.grads.push_back(grad_of(moe.gate.weight));
  for (int w = 0; w < (c.glu ? 3 : 2); ++w)
    for (int64_t e = 0; e < c.x; ++e) {
      const auto& ex = moe.experts[e];
      d.grads.push_back(grad_of((w == 0 ? ex.w1 : w == 1 ? ex.w2 : ex.w3)->weight));
    }
  for (int w = 0; c.fs && w < (c.glu ? 3 : 2); ++w) {
    const auto& sh = *moe.shared_expert;
    d.grads.push_back(grad_of((w == 0 ? sh.w1 : w == 1 ? sh.w2 : sh.w3)->weight));
  }
  return d;
}

double max_abs(const Vec& v) {
  double m = 0;
  for (double a : v) m = std::max(m, std::fabs(a));
  return m;
}

void check_layer(const Cfg& c, uint64_t seed, Shape xshape = Shape()) {
  SCOPED_TRACE(c.str());
  const auto P = params_with_margin(c, seed);
  const RefOut want = ref_forward(c, P);
  const Vec dout = randn(c.n * c.d, seed + 5);
  const double daux = 3.0;  // weights the aux losses so their router gradient is visible
  const auto want_g = ref_backward(c, P, dout, daux);

  // 1. The reference gradient against central finite differences (up to 23 coordinates each).
  for (size_t i = 0; i < P.size(); ++i) {
    std::vector<size_t> at;
    const size_t m = std::min<size_t>(P[i].size(), 23);
    for (size_t j = 0; j < m; ++j) at.push_back(m == 1 ? 0 : j * (P[i].size() - 1) / (m - 1));
    auto f = [&](const Vec& v) {
      auto Q = P;
      Q[i] = v;
      return ref_loss(c, Q, dout, daux);
    };
    Vec sampled;
    for (size_t j : at) sampled.push_back(want_g[i][j]);
    expect_close(sampled, finite_diff(f, P[i], at), 1e-5, 1e-7,
                 "reference gradient of parameter " + std::to_string(i) + " vs finite differences");
  }

  // 2. The device layer.
  const DevOut got = run_device(c, P, dout, daux, false, xshape);
  expect_close(got.out, want.out, 1e-4, 1e-5, "output");
  expect_close(Vec{got.bal, got.z, got.aux}, Vec{want.bal, want.z, want.aux}, 1e-5, 1e-7,
               "balance, z and aux losses");
  EXPECT_EQ(got.counts, want.counts);
  for (size_t i = 0; i < P.size(); ++i) {
    ASSERT_EQ(got.grads[i].size(), P[i].size()) << "parameter " << i << " got no gradient";
    expect_close(got.grads[i], want_g[i], 1e-3, 1e-4 * max_abs(want_g[i]) + 1e-12,
                 "gradient of parameter " + std::to_string(i));
  }
  // An expert with no token gets an exact zero gradient (not stale or poisoned memory).
  for (int64_t e = 0; e < c.x; ++e)
    if (want.counts[e] == 0)
      for (int w = 0; w < (c.glu ? 3 : 2); ++w)
        for (float v : got.grads[2 + w * c.x + e]) ASSERT_EQ(v, 0.0f) << "idle expert " << e;
}

}  // namespace

TEST(MoE, MatchesFloat64ReferenceSwiGLU) {
  check_layer({.n = 13, .d = 17, .f = 24, .x = 8, .k = 2}, 1);
  check_layer({.n = 1, .d = 5, .f = 7, .x = 8, .k = 2}, 2);  // six experts get no token
  check_layer({.n = 37, .d = 5, .f = 7, .x = 3, .k = 1}, 3);
  check_layer({.n = 37, .d = 17, .f = 24, .x = 8, .k = 3}, 4);
  check_layer({.n = 13, .d = 5, .f = 24, .x = 3, .k = 3}, 5);  // K = X: every expert
  check_layer({.n = 12, .d = 5, .f = 7, .x = 8, .k = 2}, 6, Shape{3, 4, 5});  // (B, L, D) input
}

TEST(MoE, MatchesFloat64ReferenceGELU) {
  check_layer({.n = 13, .d = 17, .f = 24, .x = 8, .k = 2, .glu = false}, 7);
  check_layer({.n = 37, .d = 5, .f = 7, .x = 3, .k = 1, .glu = false}, 8);
}

TEST(MoE, SomeExpertReceivesNoToken) {
  const Cfg c{.n = 13, .d = 5, .f = 7, .x = 8, .k = 1};
  // Search for parameters where at least one expert is idle, then run the full check.
  for (uint64_t s = 1; s < 200; ++s) {
    auto P = params_with_margin(c, s);
    auto counts = ref_forward(c, P).counts;
    if (std::count(counts.begin(), counts.end(), 0) > 0) {
      check_layer(c, s);
      return;
    }
  }
  FAIL() << "no seed left an expert idle";
}

TEST(MoE, EveryTokenReachesItsKExpertsLikeADenseMaskedReference) {
  // Dense formulation: run all X experts on every token, mix with a weight mask that is w_k on
  // the token's top-k experts and 0 elsewhere. Independent of the sort / gather / scatter path.
  const Cfg c{.n = 37, .d = 17, .f = 24, .x = 8, .k = 3};
  const auto P = params_with_margin(c, 11);
  const Router r = route(c, P);
  Vec dense(c.n * c.d, 0.0);
  ref::ExpertRow row;
  for (int64_t n = 0; n < c.n; ++n) {
    Vec mask(c.x, 0.0);
    for (int64_t k = 0; k < c.k; ++k) mask[r.sel[n][k]] = r.weights[n * c.k + k];
    for (int64_t e = 0; e < c.x; ++e) {
      expert_fwd(c, P, e, &P[0][n * c.d], row);
      for (int64_t j = 0; j < c.d; ++j) dense[n * c.d + j] += mask[e] * row.y[j];
    }
  }
  auto got = run_device(c, P, Vec(c.n * c.d, 0.0), 0.0);
  expect_close(got.out, dense, 1e-4, 1e-5, "MoE output vs dense masked reference");
  EXPECT_EQ(std::accumulate(got.counts.begin(), got.counts.end(), 0), c.n * c.k);
}

TEST(MoE, UniformRouterGivesBalanceLossExactlyOne) {
  for (const Cfg c : {Cfg{.n = 13, .d = 5, .f = 7, .x = 8, .k = 2}, Cfg{.n = 64, .d = 17, .f = 7, .x = 8, .k = 1}}) {
    auto P = make_params(c, 3);
    std::fill(P[1].begin(), P[1].end(), 0.0);  // zero gate: every probability is exactly 1/X
    auto got = run_device(c, P, Vec(c.n * c.d, 0.0), 0.0);
    EXPECT_EQ(got.bal, 1.0f) << c.str();
    EXPECT_NEAR(got.z, std::pow(std::log(8.0), 2), 1e-5);
    // Ties go to the lower experts: 0..K-1 take every token.
    for (int64_t e = 0; e < c.x; ++e) EXPECT_EQ(got.counts[e], e < c.k ? c.n : 0);
  }
}

TEST(MoE, RouterGetsGradientThroughMixingWeightsAndThroughAuxLossesAlone) {
  Cfg c{.n = 13, .d = 17, .f = 24, .x = 8, .k = 2, .bc = 0.0, .zc = 0.0};
  auto P = params_with_margin(c, 21);
  auto mixing = run_device(c, P, randn(c.n * c.d, 3), 0.0);
  EXPECT_GT(max_abs(to_f64(mixing.grads[1])), 1e-3) << "no router gradient through the weights";
  expect_close(mixing.grads[1], ref_backward(c, P, randn(c.n * c.d, 3), 0.0)[1], 1e-3,
               1e-4 * max_abs(to_f64(mixing.grads[1])), "router gradient, mixing only");
  c.bc = 0.01, c.zc = 0.001;
  auto aux = run_device(c, P, Vec(c.n * c.d, 0.0), 1.0, /*aux_only=*/true);
  EXPECT_GT(max_abs(to_f64(aux.grads[1])), 1e-6) << "no router gradient through the aux losses";
  const auto want = ref_backward(c, P, Vec(c.n * c.d, 0.0), 1.0);
  expect_close(aux.grads[1], want[1], 1e-3, 1e-4 * max_abs(want[1]), "router gradient, aux only");
  expect_close(aux.grads[0], want[0], 1e-3, 1e-4 * max_abs(want[0]), "input gradient, aux only");
  // Each aux term alone reaches the router.
  for (auto [bc, zc] : {std::pair{1.0, 0.0}, {0.0, 1.0}}) {
    c.bc = bc, c.zc = zc;
    auto one = run_device(c, P, Vec(c.n * c.d, 0.0), 1.0, true);
    EXPECT_GT(max_abs(to_f64(one.grads[1])), 1e-5) << "bc " << bc << " zc " << zc;
  }
}

TEST(MoE, TwoRunsAreBitIdentical) {
  const Cfg c{.n = 37, .d = 17, .f = 24, .x = 8, .k = 2};
  const auto P = make_params(c, 77);
  const Vec dout = randn(c.n * c.d, 78);
  auto a = run_device(c, P, dout, 1.0), b = run_device(c, P, dout, 1.0);
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(a.aux, b.aux);
  EXPECT_EQ(a.counts, b.counts);
  for (size_t i = 0; i < a.grads.size(); ++i) EXPECT_EQ(a.grads[i], b.grads[i]) << "grad " << i;
}

TEST(MoE, ParameterNamesFollowMixtral) {
  nn::Init init(5);
  nn::MoEBlock block(test_ctx(), {.dim = 6, .hidden = 4, .experts = 3, .top_k = 2}, init);
  auto ps = block.parameters("backbone.layers.2.");
  std::vector<std::string> names;
  for (const auto& p : ps) names.push_back(p.name);
  std::vector<std::string> want = {"backbone.layers.2.norm.weight",
                                   "backbone.layers.2.moe.gate.weight"};
  for (int e = 0; e < 3; ++e)
    for (const char* w : {"w1", "w2", "w3"})
      want.push_back("backbone.layers.2.moe.experts." + std::to_string(e) + "." + w + ".weight");
  EXPECT_EQ(names, want);
  EXPECT_FALSE(ps[0].weight_decay);
  EXPECT_TRUE(ps[1].weight_decay);
  EXPECT_EQ(ps[1].tensor.shape(), (Shape{3, 6}));
  EXPECT_EQ(ps[2].tensor.shape(), (Shape{4, 6}));  // w1 (F, D)
  EXPECT_EQ(ps[3].tensor.shape(), (Shape{6, 4}));  // w2 (D, F)
  EXPECT_EQ(ps[4].tensor.shape(), (Shape{4, 6}));  // w3 (F, D)
  nn::Init init2(5);
  nn::MoE gelu(test_ctx(), {.dim = 6, .hidden = 4, .experts = 3, .top_k = 1, .swiglu = false}, init2);
  EXPECT_EQ(gelu.parameters().size(), 1u + 2 * 3);  // no w3
}

TEST(MoE, BlockIsResidualOverRMSNorm) {
  // out = x + moe(rms_norm(x) * g); gradients of x, the norm weight and the gate against float64
  // central differences of the composed reference (relative step 1e-6: error ~1e-9).
  const Cfg c{.n = 14, .d = 5, .f = 7, .x = 3, .k = 2};
  auto P = params_with_margin(c, 31);
  const Vec g = uniform(c.d, 32, 0.5, 1.5);
  const Vec dout = randn(c.n * c.d, 33);
  const double daux = 2.0;
  auto block_loss = [&](const Vec& x, const Vec& gw, const Vec& gate, RefOut* keep) {
    auto Q = P;
    Q[1] = gate;
    Q[0] = ref::rmsnorm(x, c.n, c.d, gw, 1e-5);
    RefOut o = ref_forward(c, Q);
    for (size_t i = 0; i < o.out.size(); ++i) o.out[i] += x[i];
    double s = daux * o.aux;
    for (size_t i = 0; i < o.out.size(); ++i) s += o.out[i] * dout[i];
    if (keep) *keep = o;
    return s;
  };
  RefOut want;
  block_loss(P[0], g, P[1], &want);
  ASSERT_GT(want.margin, 1e-5);

  nn::Init init(1);
  nn::MoEBlock block(test_ctx(), moe_config(c), init);
  load(block.moe, c, P);
  upload_into(block.norm.weight, g);
  Tensor x = upload(Shape{2, 7, c.d}, P[0], true);
  auto o = block.forward(x);
  expect_close(o.out.to_host(), want.out, 1e-4, 1e-5, "block output");
  EXPECT_NEAR(o.aux_loss.item(), want.aux, 1e-6);
  magellano::autograd::backward(
      ops::add(ops::sum(ops::mul(o.out, upload(o.out.shape(), dout))), o.aux_loss, float(daux)));

  std::vector<std::pair<Tensor, int>> wrt = {{x, 0}, {block.norm.weight, 1}, {block.moe.gate.weight, 2}};
  for (auto& [t, which] : wrt) {
    Vec base = which == 0 ? P[0] : which == 1 ? g : P[1];
    std::vector<size_t> at(base.size());
    std::iota(at.begin(), at.end(), 0);
    auto f = [&, which = which](const Vec& v) {
      return block_loss(which == 0 ? v : P[0], which == 1 ? v : g, which == 2 ? v : P[1], nullptr);
    };
    Vec fd = finite_diff(f, base, at);
    expect_close(t.grad().to_host(), fd, 1e-3, 1e-4 * max_abs(fd), "block gradient " + std::to_string(which));
  }
}

// ---- routing modes and the shared expert --------------------------------------------------------

TEST(MoE, TopKSoftmaxRouterMatchesFloat64Reference) {  // Granite 4.0-H
  const auto tk = nn::MoERouter::topk_softmax;
  check_layer({.n = 13, .d = 17, .f = 24, .x = 8, .k = 2, .router = tk}, 41);
  check_layer({.n = 37, .d = 5, .f = 7, .x = 3, .k = 1, .router = tk}, 42);
  check_layer({.n = 13, .d = 5, .f = 24, .x = 3, .k = 3, .router = tk}, 43);  // K = X
  check_layer({.n = 13, .d = 17, .f = 24, .x = 8, .k = 3, .glu = false, .router = tk}, 44);
}

TEST(MoE, UnrenormalisedTopKMatchesFloat64Reference) {  // Jamba
  check_layer({.n = 13, .d = 17, .f = 24, .x = 8, .k = 2, .renorm = false}, 51);
  check_layer({.n = 37, .d = 5, .f = 7, .x = 3, .k = 1, .renorm = false}, 52);
  check_layer({.n = 13, .d = 5, .f = 24, .x = 3, .k = 3, .renorm = false}, 53);  // K = X: w = probs
  check_layer({.n = 13, .d = 17, .f = 24, .x = 8, .k = 2, .glu = false, .renorm = false}, 54);
}

TEST(MoE, SharedExpertMatchesFloat64Reference) {
  check_layer({.n = 13, .d = 17, .f = 24, .x = 8, .k = 2, .fs = 9}, 61);
  check_layer({.n = 13, .d = 17, .f = 24, .x = 8, .k = 2, .router = nn::MoERouter::topk_softmax, .fs = 40},
              62, Shape{13, 1, 17});  // Granite 4.0-H: top-k-then-softmax plus a shared expert
  check_layer({.n = 37, .d = 5, .f = 7, .x = 3, .k = 1, .glu = false, .renorm = false, .fs = 6}, 63);
}

// The modes must differ where they should, so the tests above can fail:
TEST(MoE, RoutingModesDifferWhereTheyShould) {
  const Cfg base{.n = 13, .d = 17, .f = 24, .x = 8, .k = 2};
  const auto P = params_with_margin(base, 71);
  const Vec dout = randn(base.n * base.d, 72);
  Cfg raw = base, tk = base;
  raw.renorm = false, tk.router = nn::MoERouter::topk_softmax;
  const DevOut a = run_device(base, P, dout, 0.0), b = run_device(raw, P, dout, 0.0), t = run_device(tk, P, dout, 0.0);
  // normalize_top_k = false scales each token's mix by S_n = Σ_k p_k < 1: a different output.
  double most = 0;
  for (size_t i = 0; i < a.out.size(); ++i) most = std::max(most, double(std::fabs(a.out[i] - b.out[i])));
  EXPECT_GT(most, 1e-2) << "normalize_top_k false gave the renormalised output";
  const Router rr = route(raw, P);
  for (int64_t n = 0; n < raw.n; ++n) EXPECT_LT(rr.weights[n * 2] + rr.weights[n * 2 + 1], 1.0 - 1e-3);
  // topk_softmax equals renormalised softmax_topk in exact arithmetic (and to fp32 rounding here).
  expect_close(t.out, to_f64(a.out), 1e-5, 1e-6, "topk_softmax vs softmax_topk renormalised");
  EXPECT_EQ(t.counts, a.counts);

  // ... but it selects on the logits: with probabilities that underflow to 0 in fp32 the two pick
  // different second experts (softmax_topk takes the tie at p = 0 to the lower index).
  const Cfg one{.n = 1, .d = 1, .f = 3, .x = 3, .k = 2};
  auto Q = make_params(one, 73);
  Q[0] = {1.0}, Q[1] = {0.0, -201.0, -200.0};  // logits = gate
  Cfg one_tk = one;
  one_tk.router = nn::MoERouter::topk_softmax;
  EXPECT_EQ(run_device(one, Q, Vec(1, 0.0), 0.0).counts, (std::vector<int32_t>{1, 1, 0}));
  EXPECT_EQ(run_device(one_tk, Q, Vec(1, 0.0), 0.0).counts, (std::vector<int32_t>{1, 0, 1}));

  // K = 1: a renormalised weight is always 1 (no router gradient through it); Jamba's raw weight
  // p is not.
  Cfg k1{.n = 13, .d = 5, .f = 7, .x = 3, .k = 1, .bc = 0.0, .zc = 0.0};
  const auto P1 = params_with_margin(k1, 74);
  const Vec d1 = randn(k1.n * k1.d, 75);
  EXPECT_EQ(max_abs(to_f64(run_device(k1, P1, d1, 0.0).grads[1])), 0.0);
  k1.renorm = false;
  EXPECT_GT(max_abs(to_f64(run_device(k1, P1, d1, 0.0).grads[1])), 1e-3);
}

TEST(MoE, RouterGetsGradientThroughTheMixingWeightsInEveryMode) {
  for (auto [router, renorm] : {std::pair{nn::MoERouter::softmax_topk, true}, {nn::MoERouter::softmax_topk, false},
                                {nn::MoERouter::topk_softmax, true}}) {
    const Cfg c{.n = 13, .d = 17, .f = 24, .x = 8, .k = 2, .bc = 0.0, .zc = 0.0, .router = router, .renorm = renorm};
    SCOPED_TRACE(c.str());
    const auto P = params_with_margin(c, 81);
    const Vec dout = randn(c.n * c.d, 82);
    const auto got = run_device(c, P, dout, 0.0);
    const Vec want = ref_backward(c, P, dout, 0.0)[1];
    EXPECT_GT(max_abs(want), 1e-3);
    expect_close(got.grads[1], want, 1e-3, 1e-4 * max_abs(want), "router gradient, mixing only");
  }
}

TEST(MoE, SharedExpertParameterNamesAndLoRAKinds) {
  nn::Init init(5);
  nn::MoEBlock block(test_ctx(), {.dim = 6, .hidden = 4, .experts = 2, .top_k = 1, .shared_hidden = 5}, init);
  const auto ps = block.parameters("backbone.layers.2.");
  ASSERT_EQ(ps.size(), 2u + 2 * 3 + 3);
  const std::vector<std::pair<std::string, Shape>> want = {{"backbone.layers.2.moe.shared_expert.w1.weight", Shape{5, 6}},
                                                           {"backbone.layers.2.moe.shared_expert.w2.weight", Shape{6, 5}},
                                                           {"backbone.layers.2.moe.shared_expert.w3.weight", Shape{5, 6}}};
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(ps[ps.size() - 3 + i].name, want[i].first);
    EXPECT_EQ(ps[ps.size() - 3 + i].tensor.shape(), want[i].second);
  }
  const auto lins = block.linears("backbone.layers.2.");
  ASSERT_EQ(lins.size(), 1u + 2 * 3 + 3);
  EXPECT_EQ(lins.back().path, "backbone.layers.2.moe.shared_expert.w3");
  EXPECT_EQ(lins.back().kind, "shared_expert");
  EXPECT_EQ(lins[1].kind, "experts");
  // No shared expert by default: the parameters are today's.
  nn::Init init2(5);
  nn::MoE plain(test_ctx(), {.dim = 6, .hidden = 4, .experts = 2, .top_k = 1}, init2);
  EXPECT_FALSE(plain.shared_expert);
  EXPECT_EQ(plain.parameters().size(), 1u + 2 * 3);
}

TEST(MoE, RefusesNoRenormalisationWithTopKSoftmax) {
  nn::Init init(5);
  EXPECT_THROW(nn::MoE(test_ctx(), {.dim = 6, .hidden = 4, .experts = 2, .top_k = 1,
                                    .router = nn::MoERouter::topk_softmax, .normalize_top_k = false}, init),
               magellano::Error);
}
