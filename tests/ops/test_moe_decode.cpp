// ops::moe_decode_route and ops::moe_decode_experts against float64 (ref::moe_decode_route,
// ref::moe_decode_experts: rmsnorm, the router's softmax and top-K as ref::topk_weights, the
// experts as ref::expert_row) as registered op cases (no autograd: forward only, poisoned
// outputs, both kernel mappings). The route case's output is xn, the expert ids (as floats) and
// the weights; the experts case runs both (the ids on the device only). Every router mode, SwiGLU
// and GELU, K 1 to X, odd D and F, a shared expert's term, several rows; a deliberately broken
// variant; bad input. Perf size: one phase1 MoE layer (D 448, F 1280, 8 experts, top 2) at batch 1.
// Tolerances: rtol 1e-5, atol 1e-5 for the route (a D-term norm and gate dot, a softmax); rtol
// 1e-4, atol 2e-5 for the experts (two chained dot products of D and F terms, O(1) values). The
// inputs keep the top-K scores apart (random logits of spread ~1), so rounding never swaps experts.
#include "error_text.hpp"
#include "magellano/ops/moe_decode.hpp"
#include "op_case.hpp"
#include "reference.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

namespace {

struct Case {
  int64_t t, d, f, x, k;
  int mode = 0;  // ops::DecodeRouter
  bool swiglu = true, extra = false;
  double scale = 1.0;
  uint64_t seed = 1;
};

std::string case_name(const char* op, const Case& c) {
  return std::string(op) + " T " + std::to_string(c.t) + " D " + std::to_string(c.d) + " F " + std::to_string(c.f) +
         " X " + std::to_string(c.x) + " K " + std::to_string(c.k) + " mode " + std::to_string(c.mode) +
         (c.swiglu ? "" : " gelu") + (c.extra ? " extra" : "");
}

std::vector<Input> inputs(const Case& c) {
  const double sd = 1.0 / std::sqrt(double(c.d)), sf = 1.0 / std::sqrt(double(c.f));
  return {{Shape{c.t, c.d}, randn(c.t * c.d, c.seed), false},
          {Shape{c.d}, uniform(c.d, c.seed + 1, 0.5, 1.5), false},
          {Shape{c.x, c.d}, uniform(c.x * c.d, c.seed + 2, -2 * sd, 2 * sd), false},
          {Shape{c.x, c.f, c.d}, uniform(c.x * c.f * c.d, c.seed + 3, -sd, sd), false},
          {Shape{c.x, c.f, c.d}, uniform(c.x * c.f * c.d, c.seed + 4, -sd, sd), false},
          {Shape{c.x, c.d, c.f}, uniform(c.x * c.d * c.f, c.seed + 5, -sf, sf), false},
          {Shape{c.t, c.d}, randn(c.t * c.d, c.seed + 6), false}};
}

ops::DecodeRouting route(const Case& c, const std::vector<Tensor>& t) {
  return ops::moe_decode_route(t[0], t[1], 1e-5f, t[2], c.k, static_cast<ops::DecodeRouter>(c.mode));
}

Tensor run_experts(const Case& c, const std::vector<Tensor>& t, const ops::DecodeRouting& r) {
  return ops::moe_decode_experts(t[0], r, {t[2], t[3], c.swiglu ? t[4] : Tensor(), t[5]}, float(c.scale),
                                 c.extra ? t[6] : Tensor());
}

CaseSpec route_case(Case c) {
  return {case_name("moe_decode_route", c), [c] {
            OpCase oc;
            oc.inputs = inputs(c);
            oc.device = [c](const std::vector<Tensor>& t) {
              const ops::DecodeRouting r = route(c, t);
              std::vector<float> v = r.xn.to_host();
              for (int32_t i : r.idx.to_host_i32()) v.push_back(float(i));
              for (float w : r.weights.to_host()) v.push_back(w);
              return Tensor::from_host(test_ctx(), Shape{int64_t(v.size())}, v);
            };
            oc.ref = [c](const std::vector<Vec>& x) {
              const auto r = ref::moe_decode_route(x[0], c.t, c.d, x[1], 1e-5, x[2], c.x, c.k, c.mode);
              Vec v = r.xn;
              v.insert(v.end(), r.idx.begin(), r.idx.end());
              v.insert(v.end(), r.weights.begin(), r.weights.end());
              return v;
            };
            oc.ref_grad = [](const std::vector<Vec>& x, const Vec&) { return std::vector<Vec>(x.size()); };
            oc.tol = {.fwd_rtol = 1e-5, .fwd_atol = 1e-5};
            oc.sizes = {{"T", c.t}, {"D", c.d}, {"X", c.x}, {"K", c.k}};
            oc.cost = {4.0 * (2 * c.t * c.d + c.x * c.d + c.d + 2 * c.t * c.k), 2.0 * c.t * c.d * (c.x + 3), 0, 0};
            return oc;
          }};
}

CaseSpec experts_case(Case c) {
  return {case_name("moe_decode_experts", c), [c] {
            OpCase oc;
            oc.inputs = inputs(c);
            oc.device = [c](const std::vector<Tensor>& t) { return run_experts(c, t, route(c, t)); };
            oc.ref = [c](const std::vector<Vec>& x) {
              const auto r = ref::moe_decode_route(x[0], c.t, c.d, x[1], 1e-5, x[2], c.x, c.k, c.mode);
              return ref::moe_decode_experts(x[0], c.t, c.d, c.f, r, c.k, x[3], c.swiglu ? x[4] : Vec(), x[5],
                                             double(float(c.scale)), c.extra ? x[6] : Vec());
            };
            oc.ref_grad = [](const std::vector<Vec>& x, const Vec&) { return std::vector<Vec>(x.size()); };
            oc.tol = {.fwd_rtol = 1e-4, .fwd_atol = 2e-5};
            oc.sizes = {{"T", c.t}, {"D", c.d}, {"F", c.f}, {"X", c.x}, {"K", c.k}};
            // The K chosen experts' weights read once per row (at most all X); 2 FLOPs per weight.
            const double mats = c.swiglu ? 3 : 2, read = double(std::min(c.x, c.t * c.k));
            oc.cost = {4.0 * (read * mats * c.f * c.d + 3 * c.t * c.d), 2.0 * c.t * c.k * mats * c.f * c.d, 0, 0};
            return oc;
          }};
}

const RegisterOp reg_route{{"moe_decode_route",
                            {route_case({1, 7, 5, 4, 2, 0}), route_case({3, 33, 9, 8, 2, 1}),
                             route_case({5, 65, 9, 7, 3, 2}), route_case({2, 20, 4, 3, 3, 0}),
                             route_case({4, 16, 4, 40, 1, 2})},
                            route_case({1, 448, 1280, 8, 2, 0})}};

const RegisterOp reg_experts{
    {"moe_decode_experts",
     {experts_case({1, 7, 5, 4, 2, 0}), experts_case({3, 33, 9, 8, 2, 1, true, true, 0.5}),
      experts_case({5, 65, 17, 7, 3, 2, false}), experts_case({2, 20, 130, 3, 3, 0, true, false, 1.0, 4}),
      experts_case({16, 12, 10, 6, 1, 2, false, true})},
     experts_case({1, 448, 1280, 8, 2, 0})}};

}  // namespace

TEST(MoEDecode, TheCheckRejectsADeliberatelyBrokenVariant) {
  const Case c{3, 33, 9, 8, 2, 0};
  // Every row sent to its best expert only, with the full weight.
  const auto top1 = failures_with(experts_case(c), [c](const std::vector<Tensor>& t) {
    Case one = c;
    one.k = 1;
    return run_experts(one, t, route(one, t));
  });
  EXPECT_FALSE(top1.empty());
  // The raw top-K probabilities where the renormalised ones are due.
  const auto raw = failures_with(route_case(c), [c](const std::vector<Tensor>& t) {
    Case other = c;
    other.mode = 1;
    const ops::DecodeRouting r = route(other, t);
    std::vector<float> v = r.xn.to_host();
    for (int32_t i : r.idx.to_host_i32()) v.push_back(float(i));
    for (float w : r.weights.to_host()) v.push_back(w);
    return Tensor::from_host(test_ctx(), Shape{int64_t(v.size())}, v);
  });
  EXPECT_FALSE(raw.empty());
}

TEST(MoEDecode, BadArgumentsAreOneClearError) {
  Tensor x = upload(Shape{2, 6}, randn(12, 1)), norm = upload(Shape{6}, randn(6, 2));
  Tensor gate = upload(Shape{3, 6}, randn(18, 3));
  expect_error([&] { ops::moe_decode_route(x, norm, 1e-5f, upload(Shape{3, 5}, randn(15, 4)), 2, {}); },
               "x must be (T, D), norm (D) and gate (X, D)");
  expect_error([&] { ops::moe_decode_route(x, norm, 1e-5f, gate, 4, {}); }, "1 <= top_k <= experts");
  const ops::DecodeRouting r = ops::moe_decode_route(x, norm, 1e-5f, gate, 2, {});
  Tensor w1 = upload(Shape{3, 4, 6}, randn(72, 5));
  expect_error([&] { ops::moe_decode_experts(x, r, {gate, w1, Tensor(), upload(Shape{3, 4, 6}, randn(72, 6))}); },
               "w2 must be (3, 6, 4)");
}
