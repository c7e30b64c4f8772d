// LoRA: Linear with an adapter over fp32, fp16 and NF4 bases (with dropout) against a float64
// reference, initialisation (frozen base, B = 0 gives the base's output), and a frozen base
// getting no gradient.
//
// Tolerances: LoRA Linear vs float64: forward rtol 1e-5 / atol 1e-6 and gradients rtol 1e-4 /
// atol 1e-5 (check_op's defaults): every path is fp32 GEMMs of at most a few dozen terms. The
// reference uses the *dequantized* base (fp16-rounded for the fp16 base), so the storage
// rounding itself is not an error.
#include <cmath>

#include "harness.hpp"
#include "magellano/nn/model.hpp"
#include "magellano/ops/dropout.hpp"
#include "reference.hpp"
#include "small_model.hpp"

using namespace mgtest;
namespace nn = magellano::nn;
namespace ops = magellano::ops;
namespace ag = magellano::autograd;

namespace {

// float -> nearest-even fp16 -> float (normal and subnormal range; the test data stays small).
double round_half(double x) {
  const double a = std::fabs(x);
  if (a == 0) return 0;
  double q;
  if (a < std::ldexp(1.0, -14)) {
    q = std::nearbyint(a * std::ldexp(1.0, 24)) * std::ldexp(1.0, -24);
  } else {
    int e;
    std::frexp(a, &e);  // a = m·2^e, m in [0.5, 1): 11 significant bits
    q = std::ldexp(std::nearbyint(std::ldexp(a, 11 - e)), e - 11);
  }
  return x < 0 ? -q : q;
}

// y = x·Wᵀ + s·(dropout(x)·Aᵀ)·Bᵀ   x: (T, in), W: (out, in), A: (r, in), B: (out, r); composed
// from the ops' references (the dropout mask is the kernel's, seeded by the adapter).
struct LoraRef {
  int64_t T, in, out, r;
  double s, p;
  uint64_t mask_seed;
  Vec forward(const std::vector<Vec>& v) const {
    const Vec &x = v[0], &A = v[1], &B = v[2], &W = v[3];
    const Vec u = ref::linear(ref::dropout(x, p, mask_seed), T, in, A, r);
    return ref::add(ref::linear(x, T, in, W, out), ref::linear(u, T, r, B, out), s);
  }
  std::vector<Vec> backward(const std::vector<Vec>& v, const Vec& dy) const {
    const Vec &x = v[0], &A = v[1], &B = v[2], &W = v[3];
    const Vec xm = ref::dropout(x, p, mask_seed), u = ref::linear(xm, T, in, A, r);
    Vec dx(T * in, 0.0), dA(r * in, 0.0), dB(out * r, 0.0), dW(out * in, 0.0), du(T * r, 0.0), dxm(T * in, 0.0);
    ref::linear_bwd(x, T, in, W, out, dy, dx, dW);  // dW: the frozen base's, not an output
    ref::linear_bwd(u, T, r, B, out, ref::scale(dy, s), du, dB);
    ref::linear_bwd(xm, T, in, A, r, du, dxm, dA);
    ref::dropout_bwd(p, mask_seed, dxm, dx);
    return {dx, dA, dB, {}};
  }
};

void lora_linear_case(nn::WeightStorage storage, float dropout) {
  const int64_t T0 = 3, T1 = 5, in = 7, out = 9, r = 3;
  const double alpha = 5.0;
  nn::Init init(11);
  nn::Linear lin(test_ctx(), in, out, false, init);
  Vec w = randn(out * in, 21, 0.4);
  Vec w_base = w;
  if (storage == nn::WeightStorage::f16)
    for (auto& v : w_base) v = round_half(v);
  lin.set_weight(to_f32(w));
  lin.freeze(storage, 7);  // int4: one group of 7 per row (the kernels' element path)
  if (storage == nn::WeightStorage::int4) ASSERT_TRUE(lin.int4 && !lin.weight.defined());
  if (storage == nn::WeightStorage::nf4 || storage == nn::WeightStorage::int4) {  // the reference uses the dequantized base
    w_base = to_f64(lin.dense_weight().to_host());
    double err = 0;
    for (size_t i = 0; i < w.size(); ++i) err = std::max(err, std::fabs(w_base[i] - w[i]));
    EXPECT_GT(err, 0.0);   // NF4 / int4 round...
    EXPECT_LT(err, 0.25);  // ...to within a code step of absmax (<= 0.4·3.5 here; int4: half of absmax / 7.5)
  }
  lin.add_lora(r, alpha, dropout, init, 1234);
  nn::TrainingScope training;
  nn::advance_dropout_generation();
  const LoraRef lora_ref{T0 * T1, in, out, r, alpha / r, dropout, lin.lora->mask_seed()};
  // W enters as a non-differentiable input holding the dequantized base, which the reference
  // uses; the device keeps its own (frozen, stored) copy.
  check_op(
      std::string("lora_linear_") + nn::to_string(storage),
      {{Shape{T0, T1, in}, randn(T0 * T1 * in, 22)},
       {Shape{r, in}, randn(r * in, 23, 0.5)},
       {Shape{out, r}, randn(out * r, 24, 0.5)},
       {Shape{out, in}, w_base, false}},
      [&](const std::vector<Tensor>& t) {
        lin.lora->A = t[1];
        lin.lora->B = t[2];
        return lin.forward(t[0]);
      },
      [&](const std::vector<Vec>& v) { return lora_ref.forward(v); },
      [&](const std::vector<Vec>& v, const Vec& dy) { return lora_ref.backward(v, dy); });
  // The frozen base never gets a gradient.
  if (lin.weight.defined()) {
    EXPECT_FALSE(lin.weight.requires_grad());
    EXPECT_FALSE(lin.weight.grad().defined());
  }
}

}  // namespace

TEST(LoRA, LinearFp32BaseMatchesFloat64) { lora_linear_case(nn::WeightStorage::f32, 0.0f); }

TEST(LoRA, LinearFp32BaseWithDropoutMatchesFloat64) { lora_linear_case(nn::WeightStorage::f32, 0.3f); }

TEST(LoRA, LinearFp16BaseMatchesFloat64) { lora_linear_case(nn::WeightStorage::f16, 0.2f); }

TEST(LoRA, LinearNf4BaseMatchesFloat64) { lora_linear_case(nn::WeightStorage::nf4, 0.2f); }

TEST(LoRA, LinearInt4BaseMatchesFloat64) { lora_linear_case(nn::WeightStorage::int4, 0.2f); }

TEST(LoRA, InitFreezesTheBaseAndStartsAtTheBaseOutput) {
  nn::ModelSpec plain = small_model_spec("MEM");
  nn::ModelSpec s = plain;
  s.lora.rank = 4, s.lora.alpha = 8, s.lora.targets = {"in_proj", "out_proj", "gate", "experts"};
  nn::Model base(test_ctx(), plain, 3), m(test_ctx(), s, 3);
  for (const auto& p : m.parameters()) EXPECT_FALSE(p.tensor.requires_grad()) << p.name;
  const auto lora = m.lora_parameters();
  // 2 Mamba blocks × (in_proj + out_proj) + 1 MoE block × (gate + 4 experts × 3): A and B each.
  EXPECT_EQ(lora.size(), 2u * (2 * 2 + 1 + 4 * 3));
  EXPECT_EQ(m.trainable_parameters().size(), lora.size());
  for (const auto& p : lora) {
    EXPECT_TRUE(p.tensor.requires_grad());
    const auto v = p.tensor.to_host();
    if (p.name.find("lora_B") != std::string::npos) {
      for (float x : v) ASSERT_EQ(x, 0.0f) << p.name;
    } else {  // kaiming_uniform_(a=√5) on (r, in): U(±1/√in)
      const double bound = 1.0 / std::sqrt(double(p.tensor.size(1)));
      double mx = 0;
      for (float x : v) mx = std::max(mx, std::fabs(double(x)));
      EXPECT_LE(mx, bound) << p.name;
      EXPECT_GT(mx, 0.5 * bound) << p.name;
    }
  }
  EXPECT_NE(lora.front().name.find("backbone.layers.0.mixer.in_proj.lora_A.weight"), std::string::npos);
  // The base weights are those of the same seed without LoRA, and B = 0 gives the same logits.
  ag::NoGradScope ng;
  Tensor x = Tensor::from_host_i32(test_ctx(), Shape{1, 9}, small_model_ids(9, 2));
  const auto a = base.forward(x).logits.to_host(), b = m.forward(x).logits.to_host();
  expect_close(b, to_f64(a), 1e-6, 1e-6, "fresh adapters change nothing");
}

TEST(LoRA, FrozenBaseGetsNoGradient) {
  nn::ModelSpec s = small_model_spec("ME");
  s.lora.rank = 2, s.lora.targets = {"x_proj", "dt_proj", "experts"};
  s.base_storage = nn::WeightStorage::f16;
  nn::Model m(test_ctx(), s, 4);
  randomize_adapters(m, 40);
  Tensor x = Tensor::from_host_i32(test_ctx(), Shape{2, 7}, small_model_ids(14, 8));
  ag::backward(m.loss(x, x).loss);
  for (const auto& p : m.parameters()) EXPECT_FALSE(p.tensor.grad().defined()) << p.name;
  for (const auto& l : m.linears())
    if (l.linear->weight.defined() && l.kind != "gate" && l.path.find("lm_head") == std::string::npos)
      EXPECT_EQ(l.linear->weight.dtype(), DType::f16) << l.path;
  for (const auto& p : m.lora_parameters()) {
    ASSERT_TRUE(p.tensor.grad().defined()) << p.name;
    double n = 0;
    for (float g : p.tensor.grad().to_host()) n += double(g) * g;
    EXPECT_TRUE(std::isfinite(n)) << p.name;
  }
}
