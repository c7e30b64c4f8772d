// The grouped expert MLPs (SwiGLU and GELU, with experts that own no rows) against the float64
// reference (ref::expert_mlp, which the MoE layer's reference also uses). Perf size: phase1's
// experts (D 448, F 1280, 8 experts) on 4 x 512 tokens routed to 2 each, 512 rows an expert.
// Tolerances: the expert MLP chains three GEMMs of depth D or F (<= 24) and a transcendental:
// forward rtol 1e-5 / atol 1e-5, gradients rtol 1e-4 / atol 1e-4.
#include <cmath>

#include "magellano/ops/expert_mlp.hpp"
#include "op_case.hpp"
#include "reference.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

namespace {

// R rows through their experts: 2 R D F FLOPs per GEMM (three for SwiGLU, two for GELU) and
// ~4 R F for the activation; the backward runs two GEMMs per forward one. Bytes: the rows in
// and out (2 R D), every expert's weights (G X D F, G = 3 or 2), and the R x F intermediates
// written and read (h1, h3, a: about 2 G R F); the backward also reads dy and writes dx and
// every weight gradient: about twice the forward.
Cost expert_mlp_cost(double r, double d, double f, double x, bool glu) {
  const double g = glu ? 3 : 2;
  const double fwd_bytes = 4 * (2 * r * d + g * x * d * f + 2 * g * r * f);
  return {fwd_bytes, 2 * g * r * d * f + 4 * r * f, 2 * fwd_bytes, 4 * g * r * d * f + 8 * r * f};
}

CaseSpec expert_mlp_case(int64_t d, int64_t f, std::vector<int64_t> offsets, bool glu) {
  const int64_t x = static_cast<int64_t>(offsets.size()) - 1, r = offsets.back();
  const std::string name = std::string("expert_mlp ") + (glu ? "swiglu" : "gelu") + " d" + std::to_string(d) +
                           " f" + std::to_string(f) + " x" + std::to_string(x) + " r" + std::to_string(r);
  return {name, [=] {
            OpCase c;
            c.inputs = {{Shape{r, d}, randn(r * d, 41)}};
            for (int which = 0; which < (glu ? 3 : 2); ++which)
              for (int64_t e = 0; e < x; ++e) {
                const Shape s = which == 1 ? Shape{d, f} : Shape{f, d};
                c.inputs.push_back({s, randn(s.numel(), 50 + 10 * which + e, 1.0 / std::sqrt(double(s[1])))});
              }
            // inputs: xs, w1[X], w2[X], w3[X] (SwiGLU only)
            auto weights = [x](const auto& v, int which) {
              using V = std::decay_t<decltype(v[0])>;
              if (which * x + 1 >= int64_t(v.size())) return std::vector<V>{};
              return std::vector<V>(v.begin() + 1 + which * x, v.begin() + 1 + (which + 1) * x);
            };
            c.device = [=](const std::vector<Tensor>& t) {
              return ops::expert_mlp(t[0], offsets, weights(t, 0), weights(t, 1), weights(t, 2),
                                     glu ? ops::ExpertActivation::swiglu : ops::ExpertActivation::gelu);
            };
            c.ref = [=](const std::vector<Vec>& v) {
              return ref::expert_mlp(v[0], d, f, offsets, weights(v, 0), weights(v, 1), weights(v, 2));
            };
            c.ref_grad = [=](const std::vector<Vec>& v, const Vec& dy) {
              auto g = zeros_like(v);
              auto dw1 = weights(g, 0), dw2 = weights(g, 1), dw3 = weights(g, 2);
              ref::expert_mlp_bwd(v[0], d, f, offsets, weights(v, 0), weights(v, 1), weights(v, 2), dy, g[0],
                                  dw1, dw2, dw3);
              for (int64_t e = 0; e < x; ++e) {
                g[1 + e] = dw1[e], g[1 + x + e] = dw2[e];
                if (glu) g[1 + 2 * x + e] = dw3[e];
              }
              return g;
            };
            c.tol = Tolerance{.fwd_rtol = 1e-5, .fwd_atol = 1e-5, .grad_rtol = 1e-4, .grad_atol = 1e-4,
                              .fd_rtol = 1e-5, .fd_atol = 1e-6};
            c.sizes = {{"activation", glu ? "swiglu" : "gelu"}, {"D", d}, {"F", f}, {"X", x}, {"R", r}};
            c.cost = expert_mlp_cost(double(r), double(d), double(f), double(x), glu);
            return c;
          }};
}

std::vector<int64_t> even_offsets(int64_t experts, int64_t rows_each) {
  std::vector<int64_t> o(experts + 1);
  for (int64_t e = 0; e <= experts; ++e) o[e] = e * rows_each;
  return o;
}

const RegisterOp reg{{"expert_mlp",
                      {expert_mlp_case(5, 7, {0, 4, 4, 13}, true),  // expert 1 owns no rows
                       expert_mlp_case(17, 24, {0, 1, 9, 9, 20, 26, 26, 30, 37}, true),
                       expert_mlp_case(5, 7, {0, 0, 6, 13}, false),  // expert 0 owns no rows
                       expert_mlp_case(17, 24, {0, 11, 20, 37}, false)},
                      expert_mlp_case(448, 1280, even_offsets(8, 512), true)}};

}  // namespace
