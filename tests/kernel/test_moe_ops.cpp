// MoE building blocks against float64 references: top-k with renormalisation (and its tie
// rule), the routing plan, the per-row scale, the balance and z losses, and the grouped expert
// MLPs (SwiGLU and GELU, with an expert that owns no rows).
// Tolerances: top-k, row_scale and the losses are a few fp32 operations per output (sums over
// at most D = 17 or N = 37 terms): rtol 1e-5. The expert MLP chains three GEMMs of depth D or F
// (<= 24) and a transcendental: forward rtol 1e-5 / atol 1e-5, gradients rtol 1e-4 / atol 1e-4.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "harness.hpp"
#include "magellano/ops/expert_mlp.hpp"
#include "magellano/ops/moe_ops.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

namespace {

double sig(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// Indices of the K largest entries of row p (length X), decreasing, ties to the lower index.
std::vector<int> topk_ref(const double* p, int64_t x, int64_t k) {
  std::vector<int> order(x);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [p](int a, int b) { return p[a] > p[b]; });
  order.resize(k);
  return order;
}

void topk_case(int64_t n, int64_t x, int64_t k, uint64_t seed) {
  Vec p = uniform(n * x, seed, 0.05, 1.0);
  // The selection must not change under the finite-difference step: require a margin.
  for (int64_t r = 0; r < n; ++r) {
    Vec row(p.begin() + r * x, p.begin() + (r + 1) * x);
    std::sort(row.rbegin(), row.rend());
    if (k < x) ASSERT_GT(row[k - 1] - row[k], 1e-4) << "seed " << seed << " row " << r;
  }
  auto fwd = [n, x, k](const std::vector<Vec>& in) {
    Vec w(n * k);
    for (int64_t r = 0; r < n; ++r) {
      auto sel = topk_ref(&in[0][r * x], x, k);
      double s = 0;
      for (int j : sel) s += in[0][r * x + j];
      for (int64_t j = 0; j < k; ++j) w[r * k + j] = in[0][r * x + sel[j]] / s;
    }
    return w;
  };
  auto bwd = [n, x, k](const std::vector<Vec>& in, const Vec& dw) {
    Vec dp(n * x, 0.0);
    for (int64_t r = 0; r < n; ++r) {
      auto sel = topk_ref(&in[0][r * x], x, k);
      double s = 0, dot = 0;
      for (int j : sel) s += in[0][r * x + j];
      for (int64_t j = 0; j < k; ++j) dot += dw[r * k + j] * in[0][r * x + sel[j]] / s;
      for (int64_t j = 0; j < k; ++j) dp[r * x + sel[j]] = (dw[r * k + j] - dot) / s;
    }
    return std::vector<Vec>{dp};
  };
  const std::string name = "topk_renorm n" + std::to_string(n) + " x" + std::to_string(x) +
                           " k" + std::to_string(k);
  check_op(name, {{Shape{n, x}, p}}, [k](auto& t) { return ops::topk_renorm(t[0], k).weights; },
           fwd, bwd, Tolerance{.fwd_rtol = 1e-5, .fwd_atol = 1e-7, .grad_rtol = 1e-5, .grad_atol = 1e-6});
  // The indices themselves.
  auto idx = ops::topk_renorm(upload(Shape{n, x}, p), k).idx.to_host_i32();
  for (int64_t r = 0; r < n; ++r) {
    auto sel = topk_ref(&p[r * x], x, k);
    for (int64_t j = 0; j < k; ++j) ASSERT_EQ(idx[r * k + j], sel[j]) << name << " row " << r;
  }
}

}  // namespace

TEST(MoEOps, TopKRenormOddSizes) {
  topk_case(1, 3, 1, 5);
  topk_case(13, 8, 2, 6);
  topk_case(37, 8, 3, 7);
  topk_case(13, 3, 3, 8);  // K = X: every expert, weights = probs / row sum
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
    std::vector<int32_t> perm(n * k);
    std::iota(perm.begin(), perm.end(), 0);
    std::stable_sort(perm.begin(), perm.end(), [&](int a, int b) { return ids[a] < ids[b]; });
    std::vector<int32_t> token(n * k), counts(x, 0), offsets(x + 1, 0);
    for (int i = 0; i < n * k; ++i) token[i] = perm[i] / k, counts[ids[i]]++;
    for (int e = 0; e < x; ++e) offsets[e + 1] = offsets[e] + counts[e];
    EXPECT_EQ(plan.sorted.perm.to_host_i32(), perm);
    EXPECT_EQ(plan.token_of.to_host_i32(), token);
    EXPECT_EQ(plan.counts.to_host_i32(), counts);
    EXPECT_EQ(plan.offsets.to_host_i32(), offsets);
    EXPECT_EQ(counts[x - 1], 0);
  }
}

TEST(MoEOps, RowScale) {
  for (auto [r, d] : {std::pair{1, 5}, {13, 17}, {37, 1}}) {
    check_op("row_scale r" + std::to_string(r) + " d" + std::to_string(d),
             {{Shape{r, d}, randn(r * d, 21)}, {Shape{r}, randn(r, 22)}},
             [](auto& t) { return ops::row_scale(t[0], t[1]); },
             [r, d](auto& in) {
               Vec y(r * d);
               for (int i = 0; i < r * d; ++i) y[i] = in[1][i / d] * in[0][i];
               return y;
             },
             [r, d](auto& in, const Vec& dy) {
               Vec dx(r * d), dw(r, 0.0);
               for (int i = 0; i < r * d; ++i) dx[i] = in[1][i / d] * dy[i], dw[i / d] += dy[i] * in[0][i];
               return std::vector<Vec>{dx, dw};
             },
             Tolerance{.fwd_rtol = 1e-6, .fwd_atol = 1e-7, .grad_rtol = 1e-5, .grad_atol = 1e-5});
  }
}

TEST(MoEOps, BalanceLoss) {
  for (auto [n, x, k] : {std::tuple{1, 3, 1}, {13, 8, 2}, {37, 8, 3}}) {
    Vec counts(x, 0.0);
    Vec u = uniform(n * k, 7 + n, 0, x);
    for (double v : u) counts[static_cast<int>(v)] += 1;
    auto fwd = [n, x, k](const std::vector<Vec>& in) {
      double s = 0;
      for (int e = 0; e < x; ++e) {
        double pm = 0;
        for (int r = 0; r < n; ++r) pm += in[0][r * x + e];
        s += in[1][e] / (n * k) * pm / n;
      }
      return Vec{x * s};
    };
    auto bwd = [n, x, k](const std::vector<Vec>& in, const Vec& d) {
      Vec dp(n * x);
      for (int i = 0; i < n * x; ++i) dp[i] = d[0] * x * in[1][i % x] / (n * k) / n;
      return std::vector<Vec>{dp, Vec{}};
    };
    check_op("balance_loss n" + std::to_string(n), 
             {{Shape{n, x}, uniform(n * x, 3, 0, 1)}, {Shape{x}, counts, false, DType::i32}},
             [k](auto& t) { return ops::balance_loss(t[0], t[1], k); }, fwd, bwd,
             Tolerance{.fwd_rtol = 1e-5, .fwd_atol = 1e-7, .grad_rtol = 1e-5, .grad_atol = 1e-7});
  }
}

TEST(MoEOps, ZLoss) {
  for (auto [n, x] : {std::pair{1, 3}, {13, 8}, {37, 5}}) {
    auto lse = [x](const double* l) {
      double m = *std::max_element(l, l + x), s = 0;
      for (int j = 0; j < x; ++j) s += std::exp(l[j] - m);
      return m + std::log(s);
    };
    check_op("z_loss n" + std::to_string(n), {{Shape{n, x}, randn(n * x, 31, 3.0)}},
             [](auto& t) { return ops::z_loss(t[0]); },
             [n, x, lse](auto& in) {
               double s = 0;
               for (int r = 0; r < n; ++r) s += std::pow(lse(&in[0][r * x]), 2);
               return Vec{s / n};
             },
             [n, x, lse](auto& in, const Vec& d) {
               Vec g(n * x);
               for (int r = 0; r < n; ++r) {
                 const double l = lse(&in[0][r * x]);
                 for (int j = 0; j < x; ++j) g[r * x + j] = d[0] * 2.0 / n * l * std::exp(in[0][r * x + j] - l);
               }
               return std::vector<Vec>{g};
             },
             Tolerance{.fwd_rtol = 1e-5, .fwd_atol = 1e-6, .grad_rtol = 1e-5, .grad_atol = 1e-6});
  }
}

namespace {

void expert_mlp_case(int64_t d, int64_t f, std::vector<int64_t> offsets, bool glu) {
  const int64_t x = static_cast<int64_t>(offsets.size()) - 1, r = offsets.back();
  std::vector<Input> in = {{Shape{r, d}, randn(r * d, 41)}};
  for (int which = 0; which < (glu ? 3 : 2); ++which)
    for (int64_t e = 0; e < x; ++e) {
      const Shape s = which == 1 ? Shape{d, f} : Shape{f, d};
      in.push_back({s, randn(s.numel(), 50 + 10 * which + e, 1.0 / std::sqrt(double(s[1])))});
    }
  auto act = [glu](double h1, double h3) {
    return glu ? h1 * sig(h1) * h3 : 0.5 * h1 * (1 + std::erf(h1 / std::sqrt(2.0)));
  };
  auto forward_row = [=](const std::vector<Vec>& v, int64_t row, int64_t e, Vec& h1, Vec& h3,
                         Vec& a, Vec& y) {
    const Vec &w1 = v[1 + e], &w2 = v[1 + x + e];
    h1.assign(f, 0), h3.assign(f, 0), a.assign(f, 0), y.assign(d, 0);
    for (int64_t i = 0; i < f; ++i)
      for (int64_t j = 0; j < d; ++j) {
        h1[i] += w1[i * d + j] * v[0][row * d + j];
        if (glu) h3[i] += v[1 + 2 * x + e][i * d + j] * v[0][row * d + j];
      }
    for (int64_t i = 0; i < f; ++i) a[i] = act(h1[i], h3[i]);
    for (int64_t j = 0; j < d; ++j)
      for (int64_t i = 0; i < f; ++i) y[j] += w2[j * f + i] * a[i];
  };
  auto fwd = [=](const std::vector<Vec>& v) {
    Vec out(r * d), h1, h3, a, y;
    for (int64_t e = 0; e < x; ++e)
      for (int64_t row = offsets[e]; row < offsets[e + 1]; ++row) {
        forward_row(v, row, e, h1, h3, a, y);
        std::copy(y.begin(), y.end(), out.begin() + row * d);
      }
    return out;
  };
  auto bwd = [=](const std::vector<Vec>& v, const Vec& dy) {
    std::vector<Vec> g;
    for (const auto& t : v) g.push_back(Vec(t.size(), 0.0));
    Vec h1, h3, a, y;
    for (int64_t e = 0; e < x; ++e)
      for (int64_t row = offsets[e]; row < offsets[e + 1]; ++row) {
        forward_row(v, row, e, h1, h3, a, y);
        const Vec &w1 = v[1 + e], &w2 = v[1 + x + e];
        for (int64_t i = 0; i < f; ++i) {
          double da = 0;
          for (int64_t j = 0; j < d; ++j) {
            da += w2[j * f + i] * dy[row * d + j];
            g[1 + x + e][j * f + i] += dy[row * d + j] * a[i];
          }
          double dh1, dh3 = 0;
          if (glu) {
            const double s = sig(h1[i]);
            dh1 = da * h3[i] * s * (1 + h1[i] * (1 - s));
            dh3 = da * h1[i] * s;
          } else {
            dh1 = da * (0.5 * (1 + std::erf(h1[i] / std::sqrt(2.0))) +
                        h1[i] * std::exp(-0.5 * h1[i] * h1[i]) / std::sqrt(2 * M_PI));
          }
          for (int64_t j = 0; j < d; ++j) {
            const double xv = v[0][row * d + j];
            g[1 + e][i * d + j] += dh1 * xv;
            g[0][row * d + j] += dh1 * w1[i * d + j];
            if (glu) {
              g[1 + 2 * x + e][i * d + j] += dh3 * xv;
              g[0][row * d + j] += dh3 * v[1 + 2 * x + e][i * d + j];
            }
          }
        }
      }
    return g;
  };
  std::string name = std::string("expert_mlp ") + (glu ? "swiglu" : "gelu") + " d" +
                     std::to_string(d) + " f" + std::to_string(f) + " x" + std::to_string(x);
  check_op(name, in,
           [=](auto& t) {
             std::vector<Tensor> w1(t.begin() + 1, t.begin() + 1 + x),
                 w2(t.begin() + 1 + x, t.begin() + 1 + 2 * x), w3;
             if (glu) w3.assign(t.begin() + 1 + 2 * x, t.begin() + 1 + 3 * x);
             return ops::expert_mlp(t[0], offsets, w1, w2, w3,
                                    glu ? ops::ExpertActivation::swiglu : ops::ExpertActivation::gelu);
           },
           fwd, bwd,
           Tolerance{.fwd_rtol = 1e-5, .fwd_atol = 1e-5, .grad_rtol = 1e-4, .grad_atol = 1e-4,
                     .fd_rtol = 1e-5, .fd_atol = 1e-6});
}

}  // namespace

TEST(MoEOps, ExpertMlpSwiGLU) {
  expert_mlp_case(5, 7, {0, 4, 4, 13}, true);   // expert 1 owns no rows
  expert_mlp_case(17, 24, {0, 1, 9, 9, 20, 26, 26, 30, 37}, true);
}

TEST(MoEOps, ExpertMlpGELU) {
  expert_mlp_case(5, 7, {0, 0, 6, 13}, false);  // expert 0 owns no rows
  expert_mlp_case(17, 24, {0, 11, 20, 37}, false);
}
