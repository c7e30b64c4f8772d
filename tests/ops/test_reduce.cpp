// sum / mean / sum_last / mean_last against their float64 references (ref::sum, ...). fp32
// tree sums of n terms have error ~log2(n) ulp of the sum of magnitudes; for the sizes here
// rtol 1e-5 with a small atol covers it. Perf size: 8 x 512 x 768 values (a loss over a
// training batch's activations), and rows of 768 for the _last forms.
#include "magellano/ops/reduce.hpp"
#include "op_case.hpp"
#include "reference.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

namespace {

using Forward = Vec (*)(const Vec&);
using Backward = void (*)(const Vec&, const Vec&, Vec&);

// sum or mean of all n elements: the forward reads n values (4 n bytes, n FLOPs); the
// backward writes n (4 n bytes, n FLOPs for the mean's scaling).
CaseSpec all_case(const std::string& op_name, magellano::Tensor (*op)(const magellano::Tensor&), Forward f,
                  Backward df, int64_t n, uint64_t seed) {
  return {op_name + " n" + std::to_string(n), [=] {
            OpCase c;
            c.inputs = {{Shape{n}, randn(n, seed)}};
            c.device = [op](auto& t) { return op(t[0]); };
            c.ref = [f](auto& x) { return f(x[0]); };
            c.ref_grad = [df](auto& x, const Vec& d) {
              auto g = zeros_like(x);
              df(x[0], d, g[0]);
              return g;
            };
            c.tol = Tolerance{.fwd_rtol = 1e-5, .fwd_atol = 1e-4};
            c.sizes = {{"n", n}};
            c.cost = {4.0 * n, double(n), 4.0 * n, double(n)};
            return c;
          }};
}

RegisteredOp all_op(const std::string& name, magellano::Tensor (*op)(const magellano::Tensor&), Forward f,
                    Backward df, uint64_t seed_offset) {
  std::vector<CaseSpec> tests;
  for (int64_t n : {1, 255, 257, 70001}) tests.push_back(all_case(name, op, f, df, n, n + seed_offset));
  return {name, tests, all_case(name, op, f, df, 8 * 512 * 768, 1 + seed_offset)};
}

const RegisterOp reg_sum{all_op("sum", ops::sum, ref::sum, ref::sum_bwd, 0)};
const RegisterOp reg_mean{all_op("mean", ops::mean, ref::mean, ref::mean_bwd, 1)};

// Over the last dimension of (rows, cols): the forward reads rows * cols values and writes rows;
// the backward reads rows and writes rows * cols.
CaseSpec last_case(const std::string& op_name, magellano::Tensor (*op)(const magellano::Tensor&),
                   Vec (*f)(const Vec&, int64_t), void (*df)(int64_t, const Vec&, Vec&), const Shape& s,
                   uint64_t seed) {
  return {op_name + " " + dims(s), [=] {
            const int64_t cols = s.last(), rows = s.numel() / cols;
            OpCase c;
            c.inputs = {{s, randn(s.numel(), seed)}};
            c.device = [op](auto& t) { return op(t[0]); };
            c.ref = [f, cols](auto& x) { return f(x[0], cols); };
            c.ref_grad = [df, cols](auto& x, const Vec& d) {
              auto g = zeros_like(x);
              df(cols, d, g[0]);
              return g;
            };
            const double n = double(s.numel());
            c.sizes = {{"rows", rows}, {"cols", cols}};
            c.cost = {4 * (n + rows), n, 4 * (n + rows), n};
            return c;
          }};
}

const RegisterOp reg_sum_last{{"sum_last", {last_case("sum_last", ops::sum_last, ref::sum_last, ref::sum_last_bwd, Shape{3, 7, 301}, 9)},
                               last_case("sum_last", ops::sum_last, ref::sum_last, ref::sum_last_bwd, Shape{8 * 512, 768}, 9)}};
const RegisterOp reg_mean_last{{"mean_last", {last_case("mean_last", ops::mean_last, ref::mean_last, ref::mean_last_bwd, Shape{3, 7, 301}, 10)},
                                last_case("mean_last", ops::mean_last, ref::mean_last, ref::mean_last_bwd, Shape{8 * 512, 768}, 10)}};

}  // namespace

TEST(Reduce, SumIsDeterministic) {
  Tensor x = upload(Shape{100003}, randn(100003, 77));
  const float a = ops::sum(x).item(), b = ops::sum(x).item();
  EXPECT_EQ(a, b);  // bit for bit
}
