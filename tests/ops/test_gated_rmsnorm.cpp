// Mamba2's gated group RMSNorm against its float64 reference (ref::gated_rms_norm: forward, dy,
// dz, dweight) as registered op cases, with one group, several and one channel per group; a 3-D
// input; bad arguments. Perf size: the norm of a Mamba2 layer of width 768 (inner width 1536, one
// group) over 8 x 512 tokens.
// Tolerances: forward rtol 1e-5, atol 1e-6 (a sum of up to D squares and one rsqrt in fp32);
// gradients rtol 1e-4, atol 1e-5 (one more group sum; dweight sums over all rows).
// Reference vs finite differences: atol 1e-7, but 1e-6 at 3 x 1400 channels, where the float64
// loss sums 4200 terms (partial sums ~100, rounding ~1e-14 per evaluation, over a 2e-6 step).
#include "magellano/ops/gated_rmsnorm.hpp"
#include "error_text.hpp"
#include "op_case.hpp"
#include "reference.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

namespace {

// Forward reads y, z and w and writes out: 4 (3 R D + D) bytes; ~9 R D FLOPs (silu: exp, add,
// divide and a multiply; the gate multiply; square and sum; two scalings). Backward reads y, z, w,
// dout and writes dy, dz, dw: 4 (5 R D + 2 D) bytes; ~22 R D FLOPs (the gate again, the group dot,
// du, dy, dz through silu's derivative, dweight's product and sum).
Cost gated_rms_norm_cost(double rows, double d) {
  return {4 * (3 * rows * d + d), 9 * rows * d, 4 * (5 * rows * d + 2 * d), 22 * rows * d};
}

CaseSpec gated_case(int64_t rows, int64_t d, int64_t groups, double eps, uint64_t seed, double fd_atol = 1e-7) {
  const std::string name = "gated_rms_norm rows " + std::to_string(rows) + " D " + std::to_string(d) +
                           " groups " + std::to_string(groups);
  return {name, [=] {
            OpCase c;
            c.inputs = {{Shape{rows, d}, randn(rows * d, seed)},
                        {Shape{rows, d}, randn(rows * d, seed + 1, 1.5)},
                        {Shape{d}, uniform(d, seed + 2, 0.5, 1.5)}};
            c.device = [=](const std::vector<Tensor>& t) { return ops::gated_rms_norm(t[0], t[1], t[2], groups, float(eps)); };
            c.ref = [=](const std::vector<Vec>& x) { return ref::gated_rms_norm(x[0], x[1], x[2], rows, d, groups, eps); };
            c.ref_grad = [=](const std::vector<Vec>& x, const Vec& dout) {
              return ref::gated_rms_norm_bwd(x[0], x[1], x[2], rows, d, groups, eps, dout);
            };
            c.tol = Tolerance{.fwd_rtol = 1e-5, .fwd_atol = 1e-6, .grad_rtol = 1e-4, .grad_atol = 1e-5,
                              .fd_rtol = 1e-5, .fd_atol = fd_atol};
            c.sizes = {{"rows", rows}, {"d", d}, {"groups", groups}};
            c.cost = gated_rms_norm_cost(double(rows), double(d));
            return c;
          }};
}

const RegisterOp reg{{"gated_rms_norm",
                      {gated_case(7, 33, 1, 1e-5, 1),  // one group
                       gated_case(5, 48, 3, 1e-6, 2),  // several groups
                       gated_case(130, 20, 4, 1e-5, 3),  // more than one chunk of rows for dweight
                       gated_case(3, 2 * 700, 2, 1e-5, 4, 1e-6),  // groups larger than the work-group
                       gated_case(4, 6, 6, 1e-3, 5)},  // one channel per group
                      gated_case(8 * 512, 1536, 1, 1e-5, 9)}};

}  // namespace

TEST(GatedRmsNorm, ThreeDimensionalInput) {
  const Shape s{2, 3, 8};
  Tensor y = upload(s, randn(48, 6)), z = upload(s, randn(48, 7)), w = upload(Shape{8}, uniform(8, 8, 0.5, 1.5));
  const Vec want = ref::gated_rms_norm(to_f64(y.to_host()), to_f64(z.to_host()), to_f64(w.to_host()), 6, 8, 2, 1e-5);
  Tensor out = ops::gated_rms_norm(y, z, w, 2);
  EXPECT_EQ(out.shape(), s);
  expect_close(out.to_host(), want, 1e-5, 1e-6, "(2, 3, 8) input");
}

TEST(GatedRmsNorm, BadArgumentsAreOneClearError) {
  Tensor y = upload(Shape{2, 6}, randn(12, 1)), w = upload(Shape{6}, randn(6, 2));
  using mgtest::expect_error;
  expect_error([&] { ops::gated_rms_norm(y, y, w, 4); }, "4 groups must divide the 6 channels");
  expect_error([&] { ops::gated_rms_norm(y, y.view(Shape{3, 4}), w, 2); }, "z must have y's shape (2, 6)");
  expect_error([&] { ops::gated_rms_norm(y, y, y, 2); }, "weight must have shape (6)");
  expect_error([&] { ops::gated_rms_norm(y, y, w, 2, -1.0f); }, "eps must be finite");
}
