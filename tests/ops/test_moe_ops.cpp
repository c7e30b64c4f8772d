// MoE routing ops against their float64 references (ref::topk_weights, ref::row_scale,
// ref::balance_loss, ref::z_loss): top-k with each weights mode (renormalised, raw, softmax over
// the K; and the tie rule), the routing
// plan against a host stable sort, the per-row scale, the balance and z losses. Perf sizes: a
// training batch of 8 x 512 tokens routed to 2 of 8 experts, rows of width 768.
// Tolerances: top-k, row_scale and the losses are a few fp32 operations per output (sums over
// at most D = 17 or N = 37 terms): rtol 1e-5.
#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>

#include "magellano/ops/moe_ops.hpp"
#include "op_case.hpp"
#include "reference.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

namespace {

constexpr int64_t kTokens = 8 * 512, kExperts = 8, kTopK = 2, kDim = 768;

// Router probabilities in [0.05, 1); for the test sizes (check_margin) with a margin between
// each row's K-th and (K+1)-th value.
Vec topk_probs(int64_t n, int64_t x, int64_t k, uint64_t seed, bool check_margin = true) {
  Vec p = uniform(n * x, seed, 0.05, 1.0);
  // The selection must not change under the finite-difference step: require a margin.
  for (int64_t r = 0; r < n && check_margin; ++r) {
    Vec row(p.begin() + r * x, p.begin() + (r + 1) * x);
    std::sort(row.rbegin(), row.rend());
    if (k < x) EXPECT_GT(row[k - 1] - row[k], 1e-4) << "seed " << seed << " row " << r;
  }
  return p;
}

// Forward reads (N, X) and writes (N, K) weights (and ids): 4 (N X + 2 N K) bytes, ~N X log K
// comparisons (not counted) and 2 N K FLOPs; backward reads dw, w and writes dp: 4 (N X + 2 N K).
// `mode` names the weights (ops::TopKWeights): "renorm" (the op topk_renorm), "raw", "softmax";
// the scores are the same positive draws for each (probabilities, or logits for softmax).
CaseSpec topk_case(int64_t n, int64_t x, int64_t k, uint64_t seed, bool perf = false,
                   ops::TopKWeights mode = ops::TopKWeights::renorm) {
  const char* name = mode == ops::TopKWeights::renorm ? "topk_renorm" : mode == ops::TopKWeights::raw ? "topk_raw" : "topk_softmax";
  return {std::string(name) + " n" + std::to_string(n) + " x" + std::to_string(x) + " k" + std::to_string(k), [=] {
            OpCase c;
            c.inputs = {{Shape{n, x}, topk_probs(n, x, k, seed, !perf)}};
            c.device = [k, mode](auto& t) { return ops::topk(t[0], k, mode).weights; };
            c.ref = [=](auto& in) { return ref::topk_weights(in[0], n, x, k, mode); };
            c.ref_grad = [=](auto& in, const Vec& dw) {
              auto g = zeros_like(in);
              ref::topk_weights_bwd(in[0], n, x, k, mode, dw, g[0]);
              return g;
            };
            c.tol = Tolerance{.fwd_rtol = 1e-5, .fwd_atol = 1e-7, .grad_rtol = 1e-5, .grad_atol = 1e-6};
            c.sizes = {{"N", n}, {"X", x}, {"K", k}};
            c.cost = {4.0 * (n * x + 2 * n * k), 2.0 * n * k, 4.0 * (n * x + 2 * n * k), 4.0 * n * k};
            return c;
          }};
}

// The four top-k test sizes: (n, x, k, seed).
const std::vector<std::array<int64_t, 4>> kTopKSizes = {{1, 3, 1, 5}, {13, 8, 2, 6}, {37, 8, 3, 7},
                                                        {13, 3, 3, 8}};  // K = X: every expert, weights = probs / row sum

std::vector<CaseSpec> topk_cases(ops::TopKWeights mode) {
  std::vector<CaseSpec> v;
  for (const auto& [n, x, k, seed] : kTopKSizes) v.push_back(topk_case(n, x, k, seed, false, mode));
  return v;
}

const RegisterOp reg_topk{{"topk_renorm", topk_cases(ops::TopKWeights::renorm),
                           topk_case(kTokens, kExperts, kTopK, 9, true)}};
const RegisterOp reg_topk_raw{{"topk_raw", topk_cases(ops::TopKWeights::raw),
                               topk_case(kTokens, kExperts, kTopK, 9, true, ops::TopKWeights::raw)}};
const RegisterOp reg_topk_softmax{{"topk_softmax", topk_cases(ops::TopKWeights::softmax),
                                   topk_case(kTokens, kExperts, kTopK, 9, true, ops::TopKWeights::softmax)}};

// y = w x per row: forward reads x and w, writes y (4 (2 R D + R) bytes, R D FLOPs); backward
// reads x, w, dy and writes dx, dw (4 (4 R D + 2 R) bytes, 3 R D FLOPs).
CaseSpec row_scale_case(int64_t r, int64_t d) {
  return {"row_scale r" + std::to_string(r) + " d" + std::to_string(d), [=] {
            OpCase c;
            c.inputs = {{Shape{r, d}, randn(r * d, 21)}, {Shape{r}, randn(r, 22)}};
            c.device = [](auto& t) { return ops::row_scale(t[0], t[1]); };
            c.ref = [r, d](auto& in) { return ref::row_scale(in[0], in[1], r, d); };
            c.ref_grad = [r, d](auto& in, const Vec& dy) {
              auto g = zeros_like(in);
              ref::row_scale_bwd(in[0], in[1], r, d, dy, g[0], g[1]);
              return g;
            };
            c.tol = Tolerance{.fwd_rtol = 1e-6, .fwd_atol = 1e-7, .grad_rtol = 1e-5, .grad_atol = 1e-5};
            c.sizes = {{"R", r}, {"D", d}};
            c.cost = {4.0 * (2 * r * d + r), double(r * d), 4.0 * (4 * r * d + 2 * r), 3.0 * r * d};
            return c;
          }};
}

const RegisterOp reg_row_scale{{"row_scale", {row_scale_case(1, 5), row_scale_case(13, 17), row_scale_case(37, 1)},
                                row_scale_case(kTokens * kTopK, kDim)}};

// Expert counts of n * k routed slots drawn uniformly from x experts.
Vec random_counts(int64_t n, int64_t x, int64_t k) {
  Vec counts(x, 0.0);
  Vec u = uniform(n * k, 7 + n, 0, x);
  for (double v : u) counts[static_cast<int>(v)] += 1;
  return counts;
}

// Reads (N, X) probs once each way: 4 N X bytes, N X FLOPs.
CaseSpec balance_case(int64_t n, int64_t x, int64_t k) {
  return {"balance_loss n" + std::to_string(n) + " x" + std::to_string(x) + " k" + std::to_string(k), [=] {
            OpCase c;
            c.inputs = {{Shape{n, x}, uniform(n * x, 3, 0, 1)}, {Shape{x}, random_counts(n, x, k), false, DType::i32}};
            c.device = [k](auto& t) { return ops::balance_loss(t[0], t[1], k); };
            c.ref = [=](auto& in) { return ref::balance_loss(in[0], in[1], n, x, k); };
            c.ref_grad = [=](auto& in, const Vec& d) {
              auto g = zeros_like(in);
              ref::balance_loss_bwd(in[1], n, x, k, d, g[0]);
              return g;
            };
            c.tol = Tolerance{.fwd_rtol = 1e-5, .fwd_atol = 1e-7, .grad_rtol = 1e-5, .grad_atol = 1e-7};
            c.sizes = {{"N", n}, {"X", x}, {"K", k}};
            c.cost = {4.0 * n * x, double(n * x), 4.0 * n * x, double(n * x)};
            return c;
          }};
}

const RegisterOp reg_balance{{"balance_loss", {balance_case(1, 3, 1), balance_case(13, 8, 2), balance_case(37, 8, 3)},
                              balance_case(kTokens, kExperts, kTopK)}};

// A logsumexp per row: the forward reads (N, X) (4 N X bytes, ~3 N X FLOPs), the backward
// reads it and writes the gradient (8 N X bytes, ~3 N X FLOPs).
CaseSpec z_loss_case(int64_t n, int64_t x) {
  return {"z_loss n" + std::to_string(n) + " x" + std::to_string(x), [=] {
            OpCase c;
            c.inputs = {{Shape{n, x}, randn(n * x, 31, 3.0)}};
            c.device = [](auto& t) { return ops::z_loss(t[0]); };
            c.ref = [n, x](auto& in) { return ref::z_loss(in[0], n, x); };
            c.ref_grad = [n, x](auto& in, const Vec& d) {
              auto g = zeros_like(in);
              ref::z_loss_bwd(in[0], n, x, d, g[0]);
              return g;
            };
            c.tol = Tolerance{.fwd_rtol = 1e-5, .fwd_atol = 1e-6, .grad_rtol = 1e-5, .grad_atol = 1e-6};
            c.sizes = {{"N", n}, {"X", x}};
            c.cost = {4.0 * n * x, 3.0 * n * x, 8.0 * n * x, 3.0 * n * x};
            return c;
          }};
}

const RegisterOp reg_z{{"z_loss", {z_loss_case(1, 3), z_loss_case(13, 8), z_loss_case(37, 5)},
                        z_loss_case(kTokens, kExperts)}};

// The routing plan (perf only: RoutingPlanMatchesAHostStableSort below checks it): the sort of
// the N K expert ids (keys and permutation, 16 bytes an id, one pass counted), the tokens of
// the sorted rows and the per-expert counts and offsets (8 bytes an id). No autograd.
CaseSpec routing_plan_case(int64_t n, int64_t x, int64_t k) {
  return {"routing_plan n" + std::to_string(n) + " x" + std::to_string(x) + " k" + std::to_string(k), [=] {
            Vec ids = uniform(n * k, 99, 0, double(x));
            for (auto& v : ids) v = std::floor(v);
            OpCase c;
            c.inputs = {{Shape{n * k}, ids, false, DType::i32}};
            c.device = [x, k](auto& t) { return ops::routing_plan(t[0], x, k).token_of; };
            c.sizes = {{"N", n}, {"X", x}, {"K", k}};
            c.cost = {24.0 * n * k, 0, 0, 0};
            return c;
          }};
}

const RegisterOp reg_routing{{"routing_plan", {}, routing_plan_case(kTokens, kExperts, kTopK)}};

}  // namespace

TEST(MoEOps, TopKRenormIndices) {
  for (const auto& [n, x, k, seed] : kTopKSizes) {
    const Vec p = topk_probs(n, x, k, seed);
    auto idx = ops::topk_renorm(upload(Shape{n, x}, p), k).idx.to_host_i32();
    for (int64_t r = 0; r < n; ++r) {
      auto sel = ref::topk(&p[r * x], x, k);
      for (int64_t j = 0; j < k; ++j) ASSERT_EQ(idx[r * k + j], sel[j]) << "n" << n << " x" << x << " k" << k << " row " << r;
    }
  }
}

TEST(MoEOps, TopKTiesGoToTheLowerExpert) {
  // Row 0: all equal -> 0, 1. Row 1: 3 and 1 tie for first -> 1, 3. Row 2: 2 ties with 4 for second.
  Tensor p = upload(Shape{3, 5}, Vec{0.2, 0.2, 0.2, 0.2, 0.2,  //
                                     0.1, 0.3, 0.2, 0.3, 0.1,  //
                                     0.1, 0.1, 0.25, 0.4, 0.25});
  auto t = ops::topk_renorm(p, 2);
  EXPECT_EQ(t.idx.to_host_i32(), (std::vector<int32_t>{0, 1, 1, 3, 3, 2}));
  auto w = t.weights.to_host();
  EXPECT_FLOAT_EQ(w[0], 0.5f);
  EXPECT_FLOAT_EQ(w[3], 0.5f);
}

TEST(MoEOps, RoutingPlanMatchesAHostStableSort) {
  for (auto [n, x, k] : {std::tuple{1, 8, 2}, {13, 3, 1}, {37, 8, 2}, {300, 8, 3}}) {
    Vec u = uniform(n * k, 99 + n, 0, x - 2);  // expert x-1 gets nothing
    std::vector<int32_t> ids(n * k);
    for (int i = 0; i < n * k; ++i) ids[i] = static_cast<int32_t>(u[i]);
    auto plan = ops::routing_plan(upload_i32(Shape{n * k}, ids), x, k);
    const ref::RoutingPlan want = ref::routing_plan(ids, x, k);
    EXPECT_EQ(plan.sorted.perm.to_host_i32(), want.perm);
    EXPECT_EQ(plan.token_of.to_host_i32(), want.token_of);
    EXPECT_EQ(plan.counts.to_host_i32(), want.counts);
    EXPECT_EQ(plan.offsets.to_host_i32(), want.offsets);
    EXPECT_EQ(want.counts[x - 1], 0);
  }
}
