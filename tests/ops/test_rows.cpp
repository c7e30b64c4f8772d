// split_rows / concat_rows (device copies of row blocks) against the float64 reference
// (ref::rows): row blocks, an empty one, one scaled and one dropped (no gradient: zeros).
// Perf size: 8 x 512 x 2 routed rows of 768 split into 8 experts' blocks and stacked back.
// Tolerances: check_op's defaults (forward rtol 1e-5 / atol 1e-6, gradients rtol 1e-4 / atol
// 1e-5); every value is copied or scaled by 3 once.
#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/rows.hpp"
#include "op_case.hpp"
#include "reference.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

namespace {

// x (9, 5) split at {0, 2, 2, 7, 9}: rows 0..1 dropped (no gradient: zeros), the empty block
// skipped, rows 7..8 scaled by 3, the rest stacked: (7, 5).
CaseSpec split_concat_case() {
  return {"split_rows 9x5 concat_rows", [] {
            const std::vector<int64_t> off{0, 2, 2, 7, 9};
            OpCase c;
            c.inputs = {{Shape{9, 5}, randn(45, 3)}};
            c.device = [off](const std::vector<Tensor>& t) {
              auto pieces = ops::split_rows(t[0], off);
              pieces[3] = ops::scale(pieces[3], 3.0f);
              pieces[0] = Tensor();  // rows 0..1 get no gradient: zeros
              return ops::concat_rows(pieces, 7);
            };
            c.ref = [](const std::vector<Vec>& v) {
              Vec y = ref::rows(v[0], 5, 2, 7);
              const Vec tail = ref::scale(ref::rows(v[0], 5, 7, 9), 3.0);
              y.insert(y.end(), tail.begin(), tail.end());
              return y;
            };
            c.ref_grad = [](const std::vector<Vec>& v, const Vec& dy) {
              auto g = zeros_like(v);
              ref::rows_bwd(g[0], 5, 2, 7, ref::rows(dy, 5, 0, 5));
              ref::rows_bwd(g[0], 5, 7, 9, ref::scale(ref::rows(dy, 5, 5, 7), 3.0));
              return g;
            };
            c.sizes = {{"x", "9x5"}};
            c.cost = {4.0 * 2 * 7 * 5, 2 * 5, 4.0 * 2 * 9 * 5, 2 * 5};
            return c;
          }};
}

// R rows of width D split into X equal blocks and stacked back: every value read and written
// once by the split and once by the concat (16 R D bytes each way), no FLOPs.
CaseSpec blocks_case(int64_t r, int64_t d, int64_t x) {
  return {"split_rows concat_rows " + std::to_string(r) + "x" + std::to_string(d) + " in " + std::to_string(x), [=] {
            std::vector<int64_t> off(x + 1);
            for (int64_t e = 0; e <= x; ++e) off[e] = e * r / x;
            OpCase c;
            c.inputs = {{Shape{r, d}, randn(r * d, 4)}};
            c.device = [off, r](const std::vector<Tensor>& t) { return ops::concat_rows(ops::split_rows(t[0], off), r); };
            c.sizes = {{"R", r}, {"D", d}, {"blocks", x}};
            c.cost = {16.0 * r * d, 0, 16.0 * r * d, 0};
            return c;
          }};
}

const RegisterOp reg{{"split_concat_rows", {split_concat_case()}, blocks_case(8 * 512 * 2, 768, 8)}};

}  // namespace
