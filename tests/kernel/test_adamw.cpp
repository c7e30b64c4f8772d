// AdamW (cl/adamw.cl, src/optim/) against a float64 reference of torch.optim.AdamW's formula.
//
// Why 1e-6 relative after 100 steps is achievable: the reference does its arithmetic in float64
// but, like torch's fp32 AdamW and like the device, stores p, m and v as fp32 after each
// in-place operation (p after the decay multiply and after the update; m, v after their
// update) and uses the same fp32-rounded step scalars. The decay multiply of two floats is then
// rounded identically on both sides, and the update term (about lr in size) carries only a few
// fp32 roundings (~1e-7 of lr, ~1e-10 absolute), which flips p's final rounding rarely; a flip
// is one ulp (~1e-7 relative) that persists but does not grow. So errors stay within a few ulp
// rather than compounding. Against a reference that keeps p, m, v in float64 the drift is a
// random walk of one rounding per operation (~sqrt(200) * 3e-8), checked at 1e-5.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>

#include "harness.hpp"
#include "magellano/io/st_dtype.hpp"
#include "magellano/nn/linear.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/matmul.hpp"
#include "magellano/ops/reduce.hpp"
#include "magellano/optim/adamw.hpp"

using namespace mgtest;
namespace ops = magellano::ops;
namespace optim = magellano::optim;
namespace nn = magellano::nn;
namespace autograd = magellano::autograd;

namespace {

struct Spec {
  std::string name;
  Shape shape;
  bool decay;
};

// Odd sizes, both groups interleaved in the input order, one tensor larger than a test chunk.
const std::vector<Spec> kSpecs = {
    {"a.weight", Shape{37, 53}, true}, {"a.bias", Shape{101}, false},
    {"b.weight", Shape{3, 5, 7}, true}, {"b.scale", Shape{1}, false},
    {"c.weight", Shape{257, 3}, true},  {"c.norm", Shape{999}, false},
    {"big.weight", Shape{67, 97}, true}, {"d.A_log", Shape{13, 17}, false}};
constexpr uint64_t kChunkBytes = 16 * 1024;  // forces several chunks

std::vector<nn::Parameter> make_params(uint64_t seed) {
  std::vector<nn::Parameter> out;
  for (size_t i = 0; i < kSpecs.size(); ++i) {
    const auto& s = kSpecs[i];
    Tensor t = nn::make_parameter(test_ctx(), s.shape, to_f32(randn(s.shape.numel(), seed + i)));
    t.set_name(s.name);
    out.push_back({s.name, t, s.decay});
  }
  return out;
}

// Per-step random gradients for every spec (different scales per tensor).
std::vector<std::vector<float>> make_grads(int64_t step, uint64_t seed, double scale = 0.1) {
  std::vector<std::vector<float>> g;
  for (size_t i = 0; i < kSpecs.size(); ++i)
    g.push_back(to_f32(randn(kSpecs[i].shape.numel(), seed * 1000003 + step * 131 + i,
                             scale * (1.0 + 0.5 * i))));
  return g;
}

void set_grads(optim::AdamW& opt, const std::vector<nn::Parameter>& params,
               const std::vector<std::vector<float>>& g) {
  opt.zero_grad();
  for (size_t i = 0; i < params.size(); ++i)
    params[i].tensor.grad().copy_from_host(g[i].data(), g[i].size() * 4);
}

// torch.optim.AdamW (+ clip_grad_norm_) in float64; round_state stores state as fp32.
struct Ref {
  std::vector<Vec> p, m, v;
  std::vector<Vec> sp, sm, sv;  // magnitudes the errors are relative to (see expect_rel)
  std::vector<bool> decay;
  double b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
  float fb1 = 0.9f, fb2 = 0.95f, feps = 1e-8f, fwd = 0.1f;
  bool round_state = true;
  bool half_params = false;  // p stored as fp16: the fp32 result rounded to nearest fp16
  int64_t t = 0;
  double last_norm = 0;

  Ref(const std::vector<nn::Parameter>& params, const optim::AdamWConfig& c, bool round)
      : fb1(c.beta1), fb2(c.beta2), feps(c.eps), fwd(c.weight_decay), round_state(round) {
    for (const auto& q : params) {
      p.push_back(to_f64(q.tensor.to_host()));
      m.push_back(Vec(p.back().size(), 0.0));
      v.push_back(Vec(p.back().size(), 0.0));
      sp.push_back(p.back());
      for (double& x : sp.back()) x = std::fabs(x);
      sm.push_back(Vec(p.back().size(), 0.0));
      sv.push_back(Vec(p.back().size(), 0.0));
      decay.push_back(q.weight_decay);
    }
  }
  double r(double x) const { return round_state ? double(float(x)) : x; }

  void step(const std::vector<std::vector<float>>& g, float lr, float max_norm) {
    double sq = 0;
    for (const auto& gi : g)
      for (float x : gi) sq += double(x) * double(x);
    last_norm = std::sqrt(sq);
    double coef = 1.0;
    if (max_norm > 0) coef = std::min(1.0, double(max_norm) / (last_norm + 1e-6));
    ++t;
    // The step scalars as the optimizer passes them (double, rounded to float).
    const double b1 = fb1, b2 = fb2;
    const double decay_f = float(1.0 - double(lr) * double(fwd));
    const double omb1 = float(1.0 - b1), omb2 = float(1.0 - b2);
    const double step_size = float(double(lr) / (1.0 - std::pow(b1, double(t))));
    const double bc2_sqrt = float(std::sqrt(1.0 - std::pow(b2, double(t))));
    for (size_t k = 0; k < p.size(); ++k)
      for (size_t i = 0; i < p[k].size(); ++i) {
        const double gi = double(g[k][i]) * coef;
        double pi = p[k][i];
        if (decay[k]) pi = r(pi * decay_f);
        m[k][i] = r(b1 * m[k][i] + omb1 * gi);
        v[k][i] = r(b2 * v[k][i] + omb2 * gi * gi);
        const double denom = std::sqrt(v[k][i]) / bc2_sqrt + double(feps);
        p[k][i] = r(pi - step_size * (m[k][i] / denom));
        if (half_params) p[k][i] = magellano::io::f16_to_f32(magellano::io::f32_to_f16(float(p[k][i])));
        sp[k][i] = std::max(sp[k][i], std::fabs(p[k][i]));
        sm[k][i] = std::max({sm[k][i], std::fabs(m[k][i]), std::fabs(omb1 * gi)});
        sv[k][i] = std::max({sv[k][i], v[k][i], omb2 * gi * gi});
      }
  }
};

// |got - want| <= rtol * max(|want|, scale): relative to the largest magnitude the value (or a
// term added to it) had along the way, since fp32 rounds relative to the magnitude at the time
// and such an error then persists (p) or decays slowly (m, v). Pure relative error would be
// meaningless for values that cancel towards zero (an EMA of random-sign gradients, a
// parameter passing through zero).
double expect_rel(const std::vector<float>& got, const Vec& want, const Vec& scale, double rtol,
                  const std::string& what) {
  EXPECT_EQ(got.size(), want.size()) << what;
  if (got.size() != want.size()) return INFINITY;
  size_t bad = 0, worst = 0;
  double worst_ratio = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double ratio = std::fabs(double(got[i]) - want[i]) / std::max(std::fabs(want[i]), scale[i]);
    if (!(ratio <= rtol)) ++bad;
    if (!(ratio <= worst_ratio)) { worst_ratio = ratio; worst = i; }
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << got.size() << " beyond rtol " << rtol
                     << "; worst at [" << worst << "]: got " << got[worst] << ", want "
                     << want[worst] << ", scale " << scale[worst] << ", relative " << worst_ratio;
  return worst_ratio;
}

optim::AdamWConfig test_config() {
  optim::AdamWConfig c;
  c.weight_decay = 0.1f;
  c.max_chunk_bytes = kChunkBytes;
  return c;
}

const optim::LrSchedule kSched{1e-2f, 1e-3f, 10, 100};

// Runs `steps` steps of device and references with the same gradients and compares.
void run_and_compare(int steps, float max_norm, double grad_scale, uint64_t seed,
                     bool expect_clip, double p_rtol = 1e-6) {
  auto params = make_params(seed);
  const auto cfg = test_config();
  Ref exact(params, cfg, true), drift(params, cfg, false);
  optim::AdamW opt(test_ctx(), params, cfg);
  ASSERT_GT(opt.pack().chunks().size(), 2u);
  for (int s = 0; s < steps; ++s) {
    auto g = make_grads(s, seed, grad_scale);
    set_grads(opt, params, g);
    const float lr = kSched.at(opt.step_count());
    opt.step(lr, max_norm);
    exact.step(g, lr, max_norm);
    drift.step(g, lr, max_norm);
  }
  if (max_norm > 0) {
    EXPECT_EQ(expect_clip, exact.last_norm > max_norm);
    const float norm = opt.last_grad_norm().item();
    EXPECT_NEAR(norm, exact.last_norm, 1e-6 * exact.last_norm);
  }
  EXPECT_EQ(opt.step_count(), steps);
  std::map<std::string, Tensor> state;
  for (const auto& [name, t] : opt.state_tensors()) state[name] = t;
  double wp = 0, wm = 0, wv = 0, wd = 0;
  for (size_t k = 0; k < params.size(); ++k) {
    const std::string& n = params[k].name;
    const auto p = params[k].tensor.to_host();
    wp = std::max(wp, expect_rel(p, exact.p[k], exact.sp[k], p_rtol, n + " p"));
    wm = std::max(wm, expect_rel(state.at(n + ".exp_avg").to_host(), exact.m[k], exact.sm[k],
                                 1e-6, n + " exp_avg"));
    wv = std::max(wv, expect_rel(state.at(n + ".exp_avg_sq").to_host(), exact.v[k], exact.sv[k],
                                 1e-6, n + " exp_avg_sq"));
    wd = std::max(wd, expect_rel(p, drift.p[k], drift.sp[k], 1e-5, n + " p vs float64 state"));
  }
  std::printf("  worst relative error after %d steps: p %.2e, exp_avg %.2e, exp_avg_sq %.2e; "
              "p vs float64-state reference %.2e\n", steps, wp, wm, wv, wd);
}

std::vector<uint32_t> bits(const Tensor& t) {
  auto f = t.to_host();
  std::vector<uint32_t> b(f.size());
  std::memcpy(b.data(), f.data(), f.size() * 4);
  return b;
}

}  // namespace

TEST(AdamW, HundredStepsMatchFloat64Reference) {
  run_and_compare(100, 0.0f, 0.1, 1, false);
}

TEST(AdamW, ClippingActiveMatchesReference) {
  // Gradient norm ~ 0.1 * 1.x * sqrt(~12000) ~ 20 > 1: every step is clipped.
  // p at 2e-6: the clip coefficient comes from the device's fp32 sum of ~12000 squares
  // (relative error ~1e-7, depending on the summation order) against the reference's float64
  // norm, and it scales every update; 30 updates of ~lr (1e-2) each carry it into p as up to
  // ~30 * 1e-7 * 1e-2 absolute, i.e. ~1e-6 of a parameter that is itself ~1e-2 in size.
  run_and_compare(30, 1.0f, 0.1, 2, true, 2e-6);
}

TEST(AdamW, ClippingInactiveMatchesReference) {
  run_and_compare(30, 1000.0f, 0.1, 3, false);
}

TEST(AdamW, GradNormMatchesFloat64) {
  auto params = make_params(4);
  optim::AdamW opt(test_ctx(), params, test_config());
  auto g = make_grads(0, 4, 0.3);
  set_grads(opt, params, g);
  double sq = 0;
  for (const auto& gi : g)
    for (float x : gi) sq += double(x) * double(x);
  const float norm = opt.grad_norm().item();
  EXPECT_NEAR(norm, std::sqrt(sq), 1e-6 * std::sqrt(sq));
  EXPECT_EQ(bits(opt.grad_norm()), bits(opt.grad_norm()));
}

TEST(AdamW, ZeroGradGivesZerosForUnreachedParameters) {
  Context& ctx = test_ctx();
  nn::Init init(5);
  nn::Linear used(ctx, 7, 5, true, init), idle(ctx, 7, 5, true, init);
  auto params = used.parameters("used.");
  for (auto& p : idle.parameters("idle.")) params.push_back(p);
  optim::AdamW opt(ctx, params, test_config());
  Tensor x = upload(Shape{3, 7}, randn(21, 6));
  // A first step where both get gradients (stale values to be cleared).
  opt.zero_grad();
  autograd::backward(ops::add(ops::mean(used.forward(x)), ops::mean(idle.forward(x))));
  opt.step(1e-3f);
  ASSERT_NE(idle.weight.grad().to_host()[0], 0.0f);
  // Now only `used` is reached.
  opt.zero_grad();
  autograd::backward(ops::mean(used.forward(x)));
  for (const Tensor& t : {idle.weight, idle.bias}) {
    ASSERT_TRUE(t.grad().defined());
    for (float v : t.grad().to_host()) ASSERT_EQ(v, 0.0f);
  }
  // used.bias's gradient of mean over (3, 5) outputs: 3 / 15 each, not added to stale values.
  for (float v : used.bias.grad().to_host()) EXPECT_NEAR(v, 0.2f, 1e-7f);
}

TEST(AdamW, GradientAccumulationEqualsSummedLoss) {
  Context& ctx = test_ctx();
  nn::Init init(7);
  nn::Linear lin(ctx, 9, 5, true, init);
  optim::AdamW opt(ctx, lin.parameters("lin."), test_config());
  Tensor x1 = upload(Shape{4, 9}, randn(36, 8)), x2 = upload(Shape{4, 9}, randn(36, 9));
  opt.zero_grad();
  autograd::backward(ops::mean(ops::mul(lin.forward(x1), lin.forward(x1))));
  autograd::backward(ops::mean(ops::mul(lin.forward(x2), lin.forward(x2))));
  auto acc_w = lin.weight.grad().to_host(), acc_b = lin.bias.grad().to_host();
  opt.zero_grad();
  autograd::backward(ops::add(ops::mean(ops::mul(lin.forward(x1), lin.forward(x1))),
                              ops::mean(ops::mul(lin.forward(x2), lin.forward(x2)))));
  expect_close(acc_w, to_f64(lin.weight.grad().to_host()), 1e-6, 1e-7, "weight grad");
  expect_close(acc_b, to_f64(lin.bias.grad().to_host()), 1e-6, 1e-7, "bias grad");
  // scale_grads(0.5) is exact.
  auto before = lin.weight.grad().to_host();
  opt.scale_grads(0.5f);
  auto after = lin.weight.grad().to_host();
  for (size_t i = 0; i < before.size(); ++i) ASSERT_EQ(after[i], 0.5f * before[i]);
}

namespace {
// Runs steps [from, to) with clipping; the gradients depend only on the step index.
void train(optim::AdamW& opt, const std::vector<nn::Parameter>& params, int from, int to) {
  for (int s = from; s < to; ++s) {
    set_grads(opt, params, make_grads(s, 11));
    opt.step(kSched.at(opt.step_count()), 2.0f);
  }
}
}  // namespace

TEST(AdamW, StateRoundTripContinuesBitExactly) {
  auto ref_params = make_params(10);
  optim::AdamW ref(test_ctx(), ref_params, test_config());
  train(ref, ref_params, 0, 30);

  auto params = make_params(10);
  int64_t saved_step = 0;
  std::vector<std::pair<std::string, std::vector<float>>> saved_state;
  std::vector<std::vector<float>> saved_params;
  {
    optim::AdamW first(test_ctx(), params, test_config());
    train(first, params, 0, 15);
    for (const auto& [name, t] : first.state_tensors()) saved_state.emplace_back(name, t.to_host());
    for (const auto& p : params) saved_params.push_back(p.tensor.to_host());
    saved_step = first.step_count();
  }
  // A fresh run: parameters and state from the saved host values.
  std::vector<nn::Parameter> resumed;
  for (size_t i = 0; i < kSpecs.size(); ++i)
    resumed.push_back({kSpecs[i].name,
                       nn::make_parameter(test_ctx(), kSpecs[i].shape, saved_params[i]),
                       kSpecs[i].decay});
  optim::AdamW second(test_ctx(), resumed, test_config());
  std::vector<std::pair<std::string, Tensor>> state;
  for (const auto& [name, v] : saved_state)
    state.emplace_back(name, Tensor::from_host(test_ctx(), Shape{int64_t(v.size())}, v));
  second.load_state(state);
  second.set_step_count(saved_step);
  train(second, resumed, 15, 30);

  for (size_t i = 0; i < kSpecs.size(); ++i)
    EXPECT_EQ(bits(resumed[i].tensor), bits(ref_params[i].tensor)) << kSpecs[i].name;
  auto a = ref.state_tensors(), b = second.state_tensors();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_EQ(bits(a[i].second), bits(b[i].second)) << a[i].first;
  }
  // A missing name is an error.
  state.pop_back();
  EXPECT_THROW(second.load_state(state), magellano::Error);
}

TEST(AdamW, PackingKeepsValuesShapesNamesAndHandles) {
  Context& ctx = test_ctx();
  nn::Init init(12);
  nn::Linear lin(ctx, 33, 17, true, init);
  Tensor frozen = Tensor::from_host(ctx, Shape{5}, std::vector<float>(5, 1.0f));
  auto params = lin.parameters("lin.");
  params.push_back({"frozen", frozen, true});
  params.push_back({"lin.weight.tied", lin.weight, true});  // listed twice: packed once
  std::vector<std::vector<float>> before;
  for (const auto& p : params) before.push_back(p.tensor.to_host());
  Tensor x = upload(Shape{2, 33}, randn(66, 13));
  auto y_before = lin.forward(x).to_host();
  const auto frozen_storage = frozen.storage();

  optim::AdamWConfig cfg = test_config();
  cfg.max_chunk_bytes = 4 * 1024;  // weight (561) and bias (17) still share one chunk
  optim::AdamW opt(ctx, params, cfg);
  const auto& pack = opt.pack();
  ASSERT_EQ(pack.params().size(), 2u);
  ASSERT_EQ(pack.chunks().size(), 1u);
  EXPECT_EQ(pack.params()[0].param.name, "lin.weight");
  EXPECT_EQ(pack.params()[1].param.name, "lin.bias");
  EXPECT_EQ(pack.params()[0].offset, 0);
  EXPECT_EQ(pack.params()[1].offset, 576);  // 561 rounded up to 64
  EXPECT_EQ(pack.chunks()[0].decay_end, 561);
  // The module's handles now point into the chunk, with the same values and shapes.
  EXPECT_EQ(lin.weight.storage(), pack.chunks()[0].params.storage());
  EXPECT_EQ(lin.bias.storage(), pack.chunks()[0].params.storage());
  EXPECT_EQ(lin.bias.offset(), 576u);
  EXPECT_EQ(lin.weight.shape(), (Shape{17, 33}));
  EXPECT_EQ(lin.weight.to_host(), before[0]);
  EXPECT_EQ(lin.bias.to_host(), before[1]);
  EXPECT_EQ(lin.forward(x).to_host(), y_before);
  EXPECT_EQ(frozen.storage(), frozen_storage);  // not trainable: untouched
  auto state = opt.state_tensors();
  ASSERT_EQ(state.size(), 4u);
  EXPECT_EQ(state[0].first, "lin.weight.exp_avg");
  EXPECT_EQ(state[3].first, "lin.bias.exp_avg_sq");
  EXPECT_EQ(state[0].second.shape(), (Shape{17, 33}));
  // Gradients of the module's tensors land in the gradient chunk.
  opt.zero_grad();
  autograd::backward(ops::mean(lin.forward(x)));
  EXPECT_EQ(lin.weight.grad().storage(), pack.chunks()[0].grads.storage());
  // A step changes the module's weights (they are the packed ones).
  opt.step(1e-2f);
  EXPECT_NE(lin.bias.to_host(), before[1]);
}

TEST(AdamW, MultipleChunksKeepGroupsApart) {
  auto params = make_params(14);
  optim::AdamW opt(test_ctx(), params, test_config());
  const auto& pack = opt.pack();
  for (const auto& pp : pack.params()) {
    const auto& c = pack.chunks()[pp.chunk];
    EXPECT_EQ(pp.offset % optim::ParameterPack::kAlign, 0);
    EXPECT_LE(pp.offset + pp.param.tensor.numel(), c.numel);
    if (pp.param.weight_decay) EXPECT_LE(pp.offset + pp.param.tensor.numel(), c.decay_end);
    else EXPECT_GE(pp.offset, c.decay_end);
  }
  EXPECT_EQ(pack.numel(), [] { int64_t n = 0; for (auto& s : kSpecs) n += s.shape.numel(); return n; }());
}

TEST(AdamW, BitIdenticalAcrossRuns) {
  std::vector<std::vector<uint32_t>> runs[2];
  for (int r = 0; r < 2; ++r) {
    auto params = make_params(15);
    optim::AdamW opt(test_ctx(), params, test_config());
    train(opt, params, 0, 20);
    for (const auto& p : params) runs[r].push_back(bits(p.tensor));
    for (const auto& [n, t] : opt.state_tensors()) runs[r].push_back(bits(t));
    runs[r].push_back(bits(opt.last_grad_norm()));
  }
  EXPECT_EQ(runs[0], runs[1]);
}

// ---- fp16 parameter storage (f16 parameters: f16 chunks) --------------------------------------
//
// The reference is the float64 formula above with the fp16 rounding points of the kernel:
// p and g are fp16 values (read exactly), m and v are stored as fp32, and the new p is the
// fp32 result rounded to the nearest fp16 (r16(r32(...)), as vstore_half_rte after fp32
// arithmetic). Tolerances:
//  - m, v: 1e-6 relative, as for fp32 storage: they depend only on the (identical, exactly
//    representable) gradients, not on p.
//  - p: one fp16 ulp of the value's magnitude (2^-10 relative, an upper bound on the ulp).
//    The device's fp32 result can differ from the reference's correctly rounded one by a few
//    fp32 ulps (see the top of this file); when such a value lies that close to the midpoint
//    between two fp16 numbers, the fp16 rounding goes the other way: a one-ulp difference.
//    p's update does not depend on p (only the decay does, by a factor 1 - lr*wd), so such a
//    difference persists but does not grow. We also require that at most 0.5% of the
//    elements differ at all, so the comparison is essentially exact.
namespace {

std::vector<uint16_t> to_half_bits(const std::vector<float>& v) {
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = magellano::io::f32_to_f16(v[i]);
  return h;
}
std::vector<float> round_to_half(const std::vector<float>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = magellano::io::f16_to_f32(magellano::io::f32_to_f16(v[i]));
  return out;
}

std::vector<nn::Parameter> make_half_params(uint64_t seed) {
  std::vector<nn::Parameter> out;
  for (size_t i = 0; i < kSpecs.size(); ++i) {
    const auto& s = kSpecs[i];
    Tensor t = Tensor::from_host(test_ctx(), s.shape, to_f32(randn(s.shape.numel(), seed + i)),
                                 magellano::DType::f16, magellano::MemCategory::parameters);
    t.set_requires_grad(true).set_name(s.name);
    out.push_back({s.name, t, s.decay});
  }
  return out;
}

void run_half_and_compare(int steps, float max_norm, uint64_t seed) {
  auto params = make_half_params(seed);
  auto cfg = test_config();
  cfg.max_chunk_bytes = kChunkBytes / 2;  // the same elements per chunk as f32: several chunks
  Ref ref(params, cfg, true);  // starts from the fp16 values (to_host converts exactly)
  ref.half_params = true;
  optim::AdamW opt(test_ctx(), params, cfg);
  ASSERT_GT(opt.pack().chunks().size(), 2u);
  for (const auto& c : opt.pack().chunks()) {
    ASSERT_EQ(c.params.dtype(), magellano::DType::f16);
    ASSERT_EQ(c.grads.dtype(), magellano::DType::f16);
  }
  for (int s = 0; s < steps; ++s) {
    auto g = make_grads(s, seed, 0.1);
    opt.zero_grad();
    for (size_t i = 0; i < params.size(); ++i) {
      g[i] = round_to_half(g[i]);
      const auto bits = to_half_bits(g[i]);
      params[i].tensor.grad().copy_from_host(bits.data(), bits.size() * 2);
    }
    const float lr = kSched.at(opt.step_count());
    opt.step(lr, max_norm);
    ref.step(g, lr, max_norm);
  }
  if (max_norm > 0) {
    ASSERT_GT(ref.last_norm, max_norm);  // clipping was active
    EXPECT_NEAR(opt.last_grad_norm().item(), ref.last_norm, 1e-6 * ref.last_norm);
  }
  std::map<std::string, Tensor> state;
  for (const auto& [name, t] : opt.state_tensors()) state[name] = t;
  size_t differing = 0, total = 0;
  double wp = 0;
  for (size_t k = 0; k < params.size(); ++k) {
    const std::string& n = params[k].name;
    ASSERT_EQ(params[k].tensor.dtype(), magellano::DType::f16);
    const auto p = params[k].tensor.to_host();
    wp = std::max(wp, expect_rel(p, ref.p[k], ref.sp[k], std::ldexp(1.0, -10), n + " p (fp16)"));
    for (size_t i = 0; i < p.size(); ++i) differing += double(p[i]) != ref.p[k][i];
    total += p.size();
    expect_rel(state.at(n + ".exp_avg").to_host(), ref.m[k], ref.sm[k], 1e-6, n + " exp_avg");
    expect_rel(state.at(n + ".exp_avg_sq").to_host(), ref.v[k], ref.sv[k], 1e-6, n + " exp_avg_sq");
  }
  EXPECT_LE(differing, total / 200) << differing << " of " << total << " fp16 parameters differ";
  std::printf("  fp16 storage, %d steps: %zu of %zu parameters differ from the reference (worst "
              "%.2e relative)\n", steps, differing, total, wp);
}

}  // namespace

TEST(AdamW, Fp16StorageHundredStepsMatchFloat64Reference) { run_half_and_compare(100, 0.0f, 21); }

TEST(AdamW, Fp16StorageWithClippingMatchesReference) { run_half_and_compare(30, 1.0f, 22); }

TEST(AdamW, Fp16StorageScalesGradients) {
  auto params = make_half_params(23);
  optim::AdamW opt(test_ctx(), params, test_config());
  opt.zero_grad();
  const auto g = round_to_half(make_grads(0, 23)[0]);
  const auto bits = to_half_bits(g);
  params[0].tensor.grad().copy_from_host(bits.data(), bits.size() * 2);
  opt.scale_grads(0.5f);  // the fp32 product rounded to fp16: exact except for subnormals
  const auto half = params[0].tensor.grad().to_host();
  std::vector<float> want(g.size());
  for (size_t i = 0; i < g.size(); ++i) want[i] = 0.5f * g[i];
  want = round_to_half(want);
  for (size_t i = 0; i < g.size(); ++i) ASSERT_EQ(half[i], want[i]) << i;
}

// f32 and f16 parameters in one optimizer: chunks of one dtype each (f32 first), and every
// parameter moves exactly as it does in an optimizer of its own dtype alone (no clipping: the
// update of an element depends on nothing else). With clipping, the norm spans both.
TEST(AdamW, MixedDtypesPackApartAndUpdateAsAlone) {
  auto make_mixed = [](uint64_t seed) {
    auto f32 = make_params(seed), f16 = make_half_params(seed);
    std::vector<nn::Parameter> out;
    for (size_t i = 0; i < kSpecs.size(); ++i) out.push_back(i % 2 ? f16[i] : f32[i]);
    return out;
  };
  auto mixed = make_mixed(31), alone = make_mixed(31);
  optim::AdamW opt(test_ctx(), mixed, test_config());
  std::vector<nn::Parameter> alone32, alone16;
  for (size_t i = 0; i < alone.size(); ++i) (i % 2 ? alone16 : alone32).push_back(alone[i]);
  optim::AdamW opt32(test_ctx(), alone32, test_config()), opt16(test_ctx(), alone16, test_config());
  const auto& chunks = opt.pack().chunks();
  ASSERT_GT(chunks.size(), 2u);
  bool seen_f16 = false;
  for (const auto& c : chunks) {
    EXPECT_EQ(c.grads.dtype(), c.dtype());
    if (c.dtype() == magellano::DType::f16) seen_f16 = true;
    else EXPECT_FALSE(seen_f16) << "an f32 chunk after an f16 one";
  }
  EXPECT_TRUE(seen_f16);
  for (const auto& pp : opt.pack().params())
    EXPECT_EQ(chunks[pp.chunk].dtype(), pp.param.tensor.dtype()) << pp.param.name;
  auto fill = [](optim::AdamW& o, const std::vector<nn::Parameter>& ps, int64_t step) {
    o.zero_grad();
    for (const auto& p : ps) {
      size_t k = 0;
      while (kSpecs[k].name != p.name) ++k;
      const auto g = round_to_half(make_grads(step, 31)[k]);
      if (p.tensor.dtype() == magellano::DType::f16) {
        const auto h = to_half_bits(g);
        p.tensor.grad().copy_from_host(h.data(), h.size() * 2);
      } else {
        p.tensor.grad().copy_from_host(g.data(), g.size() * 4);
      }
    }
  };
  for (int64_t s = 0; s < 10; ++s) {
    fill(opt, mixed, s), fill(opt32, alone32, s), fill(opt16, alone16, s);
    const float lr = kSched.at(s);
    opt.step(lr), opt32.step(lr), opt16.step(lr);
  }
  for (size_t i = 0; i < mixed.size(); ++i)
    EXPECT_EQ(mixed[i].tensor.to_host(), alone[i].tensor.to_host()) << mixed[i].name;
  // The clipping norm covers both dtypes.
  fill(opt, mixed, 10);
  double sq = 0;
  for (size_t i = 0; i < kSpecs.size(); ++i)
    for (float x : round_to_half(make_grads(10, 31)[i])) sq += double(x) * x;
  opt.step(1e-3f, 1.0f);
  EXPECT_NEAR(opt.last_grad_norm().item(), std::sqrt(sq), 1e-6 * std::sqrt(sq));
  // Parameters of another dtype are refused, naming the parameter.
  Tensor bad = Tensor::from_host_i32(test_ctx(), Shape{3}, {1, 2, 3});
  bad.set_requires_grad(true);
  EXPECT_THROW(optim::AdamW(test_ctx(), {{"ids", bad, false}}, test_config()), magellano::Error);
}

// step(lr, max_norm, grad_scale) reads the stored gradients times grad_scale: gradients stored
// 1024 times larger and read with grad_scale 1/1024 move the parameters to the same bits
// (scaling by a power of two is exact in every sum, square root and product involved), and
// the reported norm is that of the unscaled gradients.
TEST(AdamW, GradScaleUnscalesExactly) {
  auto plain = make_params(41), scaled = make_params(41);
  optim::AdamW a(test_ctx(), plain, test_config()), b(test_ctx(), scaled, test_config());
  for (int s = 0; s < 12; ++s) {
    auto g = make_grads(s, 41);
    set_grads(a, plain, g);
    for (auto& gi : g)
      for (float& x : gi) x *= 1024.0f;
    set_grads(b, scaled, g);
    const float max_norm = s % 2 ? 1.0f : 0.0f;  // alternate clipping on and off
    a.step(kSched.at(s), max_norm);
    b.step(kSched.at(s), max_norm, 1.0f / 1024.0f);
    if (max_norm > 0) EXPECT_EQ(bits(a.last_grad_norm()), bits(b.last_grad_norm())) << s;
  }
  for (size_t i = 0; i < plain.size(); ++i)
    EXPECT_EQ(bits(plain[i].tensor), bits(scaled[i].tensor)) << plain[i].name;
  EXPECT_EQ(bits(a.grad_norm()), bits(b.grad_norm(1.0f / 1024.0f)));
}

// Why fp16 gradients need loss scaling: gradients of ~1e-6 are fp16 subnormals (spacing
// 2^-24 ~ 6e-8, so one or two significant bits). Stored 65536 times larger they are normal
// fp16 numbers (11 bits), and grad_scale 1/65536 restores them inside the step in fp32: the
// first moment then holds (1 - b1) g to fp16's precision (2^-11 relative, plus the moment's own
// fp32 rounding; relative to max(|g|, 1e-7)). Stored unscaled, the error is tens of percent.
TEST(AdamW, Fp16GradientsSurviveWhenStoredScaled) {
  auto params = make_half_params(42);
  params.resize(1);  // a.weight (37, 53)
  const int64_t n = params[0].tensor.numel();
  const Vec g = randn(n, 43, 1e-6);
  auto first_moment_error = [&](double stored_scale) {
    optim::AdamW o(test_ctx(), params, test_config());
    o.zero_grad();
    std::vector<float> stored(n);
    for (int64_t i = 0; i < n; ++i) stored[i] = float(g[i] * stored_scale);
    const auto h = to_half_bits(stored);
    params[0].tensor.grad().copy_from_host(h.data(), h.size() * 2);
    o.step(1e-3f, 0.0f, float(1.0 / stored_scale));
    const auto m = o.state_tensors()[0].second.to_host();  // a.weight.exp_avg
    double worst = 0;
    for (int64_t i = 0; i < n; ++i)
      worst = std::max(worst, std::fabs(m[i] - 0.1 * g[i]) / (0.1 * std::max(std::fabs(g[i]), 1e-7)));
    return worst;
  };
  const double scaled = first_moment_error(65536.0), unscaled = first_moment_error(1.0);
  std::printf("  first moment of gradients ~1e-6 stored in fp16: worst relative error %.2e scaled "
              "by 65536, %.2e unscaled\n", scaled, unscaled);
  EXPECT_LE(scaled, std::ldexp(1.0, -11) + 1e-6);
  EXPECT_GT(unscaled, 0.1);
}

// Stochastic rounding of fp16 parameters (AdamWConfig::stochastic_rounding): an update of
// 1e-4 on weights at 1.0 is a fifth of an fp16 ulp (2^-10 above 1, 2^-11 below). Rounded to
// nearest it is lost at every step, so the weights never move; rounded stochastically each
// weight moves by a whole ulp with the matching probability, so the mean over 4096 weights
// follows the exact trajectory, 1 - 50 steps x 1e-4 = 0.995. (Constant gradient: Adam's
// bias-corrected m / sqrt(v) is 1, so each step is lr.) The bound, 2e-4, is 7 standard
// deviations of the mean of 4096 independent sums of 50 roundings of at most 2^-11 each.
TEST(AdamW, Fp16StochasticRoundingFollowsUpdatesBelowAnUlp) {
  auto run = [](bool stochastic) {
    Tensor w = Tensor::from_host(test_ctx(), Shape{4096}, std::vector<float>(4096, 1.0f), magellano::DType::f16,
                                 magellano::MemCategory::parameters);
    w.set_requires_grad(true);
    auto cfg = test_config();
    cfg.stochastic_rounding = stochastic;
    optim::AdamW opt(test_ctx(), {{"w", w, false}}, cfg);
    const auto g = to_half_bits(std::vector<float>(4096, 1e-3f));
    for (int s = 0; s < 50; ++s) {
      opt.zero_grad();
      w.grad().copy_from_host(g.data(), g.size() * 2);
      opt.step(1e-4f);
    }
    return w.to_host();
  };
  for (float v : run(false)) ASSERT_EQ(v, 1.0f) << "round to nearest loses every update";
  const auto p = run(true);
  double mean = 0;
  for (float v : p) mean += v;
  mean /= double(p.size());
  std::printf("  50 updates of 1e-4 on fp16 weights at 1.0: mean %.6f rounded stochastically (exact 0.995000)\n",
              mean);
  EXPECT_NEAR(mean, 0.995, 2e-4);
  for (float v : p) ASSERT_TRUE(v <= 1.0f && v >= 0.98f) << v;
  EXPECT_EQ(run(true), p) << "the random bits are a hash of the step, chunk and element: same run, same bits";
}

// One step from the same state: every stochastically rounded parameter is one of the two fp16
// neighbours of the float64 reference's fp32 result (a strict bound of one fp16 spacing), and
// across ~10k parameters the fraction rounded up matches the mean distance to the lower
// neighbour (a rounding that always went one way would be off by ~0.5).
TEST(AdamW, Fp16StochasticRoundingPicksANeighbourWithTheRightOdds) {
  auto params = make_half_params(51);
  auto cfg = test_config();
  cfg.stochastic_rounding = true;
  Ref ref(params, cfg, true);  // fp32 rounding points, no fp16 rounding of p: the value to round
  optim::AdamW opt(test_ctx(), params, cfg);
  auto g = make_grads(0, 51, 0.1);
  opt.zero_grad();
  for (size_t i = 0; i < params.size(); ++i) {
    g[i] = round_to_half(g[i]);
    const auto h = to_half_bits(g[i]);
    params[i].tensor.grad().copy_from_host(h.data(), h.size() * 2);
  }
  opt.step(1e-2f);
  ref.step(g, 1e-2f, 0.0f);
  double ups = 0, expected_ups = 0;
  size_t n = 0;
  for (size_t k = 0; k < params.size(); ++k) {
    const auto p = params[k].tensor.to_host();
    for (size_t i = 0; i < p.size(); ++i) {
      const double x = ref.p[k][i];
      // The fp16 neighbours of x: spacing 2^(e-10) (2^-24 among subnormals). The device's fp32
      // result may differ from the reference's by an fp32 ulp, so "a neighbour" is checked as
      // "an fp16 value (it was stored as one) less than one spacing from x".
      const double a = std::fabs(x);
      const int e = std::max(std::ilogb(a), -14);
      const double spacing = std::ldexp(1.0, e - 10);
      const double lo = std::floor(a / spacing) * spacing;
      const double got = std::fabs(double(p[i]));
      ASSERT_LT(std::fabs(got - a), spacing * (1 + 1e-6)) << params[k].name << "[" << i << "]: " << p[i] << " for " << x;
      if (p[i] != 0.0f) ASSERT_EQ(std::signbit(p[i]), std::signbit(x)) << params[k].name << "[" << i << "]";
      ups += got > lo;
      expected_ups += (a - lo) / spacing;
      ++n;
    }
  }
  std::printf("  one step, %zu fp16 parameters: %.0f rounded up, %.1f expected\n", n, ups, expected_ups);
  EXPECT_NEAR(ups / n, expected_ups / n, 0.02);
}
