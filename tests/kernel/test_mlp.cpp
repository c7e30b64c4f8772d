// The dense MLP (nn::Mlp: SwiGLU / GELU, through ops::expert_mlp or each Linear's forward) and its
// residual block (nn::MlpBlock = x + mlp(rms_norm(x))) against float64 references (ref::expert_row
// per token, ref::rmsnorm), forward and every parameter's gradient; the reference gradient of the
// block checked by central finite differences.
//
// Tolerances (fp32 device vs float64): outputs rtol 1e-4, atol 1e-5 (two GEMM chains of depth
// <= 40; observed ~1e-6); gradients rtol 1e-3, atol 1e-4 · max|reference| (as the MoE layer's,
// tests/kernel/test_moe.cpp). Reference vs finite differences: rtol 1e-5, atol 1e-7.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "harness.hpp"
#include "magellano/nn/mlp.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/reduce.hpp"
#include "reference.hpp"

using namespace mgtest;
namespace ops = magellano::ops;
namespace nn = magellano::nn;

namespace {

struct Cfg {
  int64_t n, d, f;
  bool glu = true;
  std::string str() const {
    return "n" + std::to_string(n) + " d" + std::to_string(d) + " f" + std::to_string(f) + (glu ? " swiglu" : " gelu");
  }
};

// P[0] = x (N, D), P[1] = norm weight (D), P[2] = w1 (F, D), P[3] = w2 (D, F), P[4] = w3 (F, D).
std::vector<Vec> make_params(const Cfg& c, uint64_t seed) {
  std::vector<Vec> p = {randn(c.n * c.d, seed), uniform(c.d, seed + 1, 0.5, 1.5)};
  for (int w = 0; w < (c.glu ? 3 : 2); ++w) {
    const double b = 1.0 / std::sqrt(double(w == 1 ? c.f : c.d));
    p.push_back(uniform(c.f * c.d, seed + 2 + w, -b, b));
  }
  return p;
}

// out = [x +] mlp([rms_norm](x)), per token through ref::expert_row; loss = Σ out · dout.
Vec ref_forward(const Cfg& c, const std::vector<Vec>& P, bool block) {
  const Vec h = block ? ref::rmsnorm(P[0], c.n, c.d, P[1], 1e-5) : P[0];
  Vec out = block ? P[0] : Vec(c.n * c.d, 0.0);
  ref::ExpertRow row;
  for (int64_t n = 0; n < c.n; ++n) {
    ref::expert_row(&h[n * c.d], c.d, c.f, P[2], P[3], c.glu ? &P[4] : nullptr, row);
    for (int64_t j = 0; j < c.d; ++j) out[n * c.d + j] += row.y[j];
  }
  return out;
}

// The bare Mlp's reference gradients (x, -, w1, w2, w3) from ref::expert_row_bwd.
std::vector<Vec> ref_backward(const Cfg& c, const std::vector<Vec>& P, const Vec& dout) {
  std::vector<Vec> g;
  for (const auto& t : P) g.push_back(Vec(t.size(), 0.0));
  ref::ExpertRow row;
  for (int64_t n = 0; n < c.n; ++n) {
    ref::expert_row(&P[0][n * c.d], c.d, c.f, P[2], P[3], c.glu ? &P[4] : nullptr, row);
    ref::expert_row_bwd(&P[0][n * c.d], c.d, c.f, P[2], P[3], c.glu ? &P[4] : nullptr, row, &dout[n * c.d],
                        &g[0][n * c.d], g[2], g[3], c.glu ? &g[4] : nullptr);
  }
  return g;
}

void upload_into(const Tensor& t, const Vec& v) {
  auto f = to_f32(v);
  Tensor handle = t;
  handle.copy_from_host(f.data(), f.size() * sizeof(float));
}

void load(const nn::Mlp& m, const std::vector<Vec>& P) {
  upload_into(m.w1->weight, P[2]);
  upload_into(m.w2->weight, P[3]);
  if (m.w3) upload_into(m.w3->weight, P[4]);
}

double max_abs(const Vec& v) {
  double m = 0;
  for (double a : v) m = std::max(m, std::fabs(a));
  return m;
}

struct DevOut {
  std::vector<float> out;
  std::vector<std::vector<float>> grads;  // in P's order
};

// Runs the Mlp (block = false: forward or forward_linears) or the MlpBlock on P, backward of Σ out · dout.
DevOut run_device(const Cfg& c, const std::vector<Vec>& P, const Vec& dout, bool block, bool linears = false,
                  Shape xshape = Shape()) {
  nn::Init init(1);
  nn::MlpBlock b(test_ctx(), {.dim = c.d, .hidden = c.f, .swiglu = c.glu}, init);
  load(b.mlp, P);
  upload_into(b.norm.weight, P[1]);
  Tensor x = upload(xshape.ndim() ? xshape : Shape{c.n, c.d}, P[0], true);
  const Tensor y = block ? b.forward(x) : linears ? b.mlp.forward_linears(x) : b.mlp.forward(x);
  EXPECT_EQ(y.shape(), x.shape());
  magellano::autograd::backward(ops::sum(ops::mul(y, upload(y.shape(), dout))));
  DevOut d{y.to_host(), {}};
  for (const Tensor& t : {x, b.norm.weight, b.mlp.w1->weight, b.mlp.w2->weight})
    d.grads.push_back(t.grad().defined() ? t.grad().to_host() : std::vector<float>{});
  if (c.glu) d.grads.push_back(b.mlp.w3->weight.grad().to_host());
  return d;
}

void check_mlp(const Cfg& c, uint64_t seed, bool linears, Shape xshape = Shape()) {
  SCOPED_TRACE(c.str() + (linears ? " forward_linears" : " forward"));
  const auto P = make_params(c, seed);
  const Vec dout = randn(c.n * c.d, seed + 9);
  const DevOut got = run_device(c, P, dout, false, linears, xshape);
  expect_close(got.out, ref_forward(c, P, false), 1e-4, 1e-5, "output");
  const auto want = ref_backward(c, P, dout);
  for (size_t i : {0, 2, 3, 4}) {
    if (i == 4 && !c.glu) continue;
    expect_close(got.grads[i], want[i], 1e-3, 1e-4 * max_abs(want[i]), "gradient of parameter " + std::to_string(i));
  }
}

}  // namespace

TEST(Mlp, MatchesFloat64Reference) {
  for (bool linears : {false, true}) {
    check_mlp({.n = 13, .d = 17, .f = 24}, 1, linears);
    check_mlp({.n = 1, .d = 5, .f = 7}, 2, linears);
    check_mlp({.n = 37, .d = 5, .f = 40, .glu = false}, 3, linears);
    check_mlp({.n = 12, .d = 5, .f = 7}, 4, linears, Shape{3, 4, 5});  // (B, L, D) input
  }
}

TEST(Mlp, SwiGLUAndGELUDiffer) {
  // The activation choice reaches the arithmetic (so the reference checks above can fail).
  const Cfg glu{.n = 6, .d = 5, .f = 7};
  Cfg gelu = glu;
  gelu.glu = false;
  auto P = make_params(glu, 11);
  const Vec d(glu.n * glu.d, 0.0);
  const auto a = run_device(glu, P, d, false), b = run_device(gelu, P, d, false);
  double most = 0;
  for (size_t i = 0; i < a.out.size(); ++i) most = std::max(most, double(std::fabs(a.out[i] - b.out[i])));
  EXPECT_GT(most, 1e-3);
}

TEST(Mlp, BlockIsResidualOverRMSNorm) {
  for (const Cfg c : {Cfg{.n = 14, .d = 5, .f = 7}, Cfg{.n = 9, .d = 6, .f = 11, .glu = false}}) {
    SCOPED_TRACE(c.str());
    const auto P = make_params(c, 21);
    const Vec dout = randn(c.n * c.d, 22);
    const DevOut got = run_device(c, P, dout, true, false, Shape{1, c.n, c.d});
    expect_close(got.out, ref_forward(c, P, true), 1e-4, 1e-5, "block output");
    // Every parameter's gradient against central finite differences of the float64 block.
    for (size_t i = 0; i < P.size(); ++i) {
      std::vector<size_t> at(P[i].size());
      std::iota(at.begin(), at.end(), 0);
      auto loss = [&](const Vec& v) {
        auto Q = P;
        Q[i] = v;
        const Vec o = ref_forward(c, Q, true);
        double s = 0;
        for (size_t j = 0; j < o.size(); ++j) s += o[j] * dout[j];
        return s;
      };
      const Vec fd = finite_diff(loss, P[i], at);
      expect_close(got.grads[i], fd, 1e-3, 1e-4 * max_abs(fd), "block gradient " + std::to_string(i));
    }
  }
  // The bare Mlp's reference gradient (used above) against finite differences too.
  const Cfg c{.n = 4, .d = 5, .f = 7};
  const auto P = make_params(c, 23);
  const Vec dout = randn(c.n * c.d, 24);
  const auto g = ref_backward(c, P, dout);
  for (size_t i : {0, 2, 3, 4}) {
    std::vector<size_t> at(P[i].size());
    std::iota(at.begin(), at.end(), 0);
    auto loss = [&](const Vec& v) {
      auto Q = P;
      Q[i] = v;
      const Vec o = ref_forward(c, Q, false);
      double s = 0;
      for (size_t j = 0; j < o.size(); ++j) s += o[j] * dout[j];
      return s;
    };
    expect_close(g[i], finite_diff(loss, P[i], at), 1e-5, 1e-7, "reference gradient " + std::to_string(i));
  }
}

TEST(Mlp, WithLoRAMatchesTheGroupedPathAtInit) {
  // A fresh adapter (B = 0) leaves the output unchanged: the composed path (forward_linears, taken
  // because of the adapter) equals the grouped ops::expert_mlp path, and A, B get gradients.
  const Cfg c{.n = 9, .d = 6, .f = 10};
  const auto P = make_params(c, 31);
  const Vec dout = randn(c.n * c.d, 32);
  const DevOut plain = run_device(c, P, dout, false);
  nn::Init init(1);
  nn::Mlp m(test_ctx(), {.dim = c.d, .hidden = c.f}, init);
  load(m, P);
  for (auto& l : m.linears()) {
    l.linear->freeze(nn::WeightStorage::f32);
    l.linear->add_lora(2, 4.0, 0.0, init, 7);
  }
  EXPECT_FALSE(nn::Mlp::grouped({&m}));
  Tensor x = upload(Shape{c.n, c.d}, P[0], true);
  const Tensor y = m.forward(x);
  expect_close(y.to_host(), to_f64(plain.out), 1e-5, 1e-6, "LoRA path vs grouped path");
  magellano::autograd::backward(ops::sum(ops::mul(y, upload(y.shape(), dout))));
  expect_close(x.grad().to_host(), to_f64(plain.grads[0]), 1e-4, 1e-5, "input gradient");
  EXPECT_GT(max_abs(to_f64(m.w2->lora->B.grad().to_host())), 0.0);
}

TEST(Mlp, ParameterNamesAndLoRAKinds) {
  nn::Init init(5);
  nn::MlpBlock block(test_ctx(), {.dim = 6, .hidden = 4}, init);
  std::vector<std::string> names;
  for (const auto& p : block.parameters("backbone.layers.4.")) names.push_back(p.name);
  EXPECT_EQ(names, (std::vector<std::string>{"backbone.layers.4.norm.weight", "backbone.layers.4.mlp.w1.weight",
                                             "backbone.layers.4.mlp.w2.weight", "backbone.layers.4.mlp.w3.weight"}));
  const auto ps = block.parameters();
  EXPECT_EQ(ps[1].tensor.shape(), (Shape{4, 6}));  // w1 (F, D)
  EXPECT_EQ(ps[2].tensor.shape(), (Shape{6, 4}));  // w2 (D, F)
  EXPECT_EQ(ps[3].tensor.shape(), (Shape{4, 6}));  // w3 (F, D)
  const auto lins = block.linears("backbone.layers.4.");
  ASSERT_EQ(lins.size(), 3u);
  for (const auto& l : lins) EXPECT_EQ(l.kind, "mlp");
  EXPECT_EQ(lins[0].path, "backbone.layers.4.mlp.w1");
  const auto& kinds = magellano::nn::lora_target_kinds();
  EXPECT_NE(std::find(kinds.begin(), kinds.end(), "mlp"), kinds.end());
  EXPECT_NE(std::find(kinds.begin(), kinds.end(), "shared_expert"), kinds.end());
  nn::Init init2(5);
  nn::MlpBlock gelu(test_ctx(), {.dim = 6, .hidden = 4, .swiglu = false}, init2);
  EXPECT_EQ(gelu.parameters().size(), 3u);  // no w3
}
