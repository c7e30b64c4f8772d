// causal_conv1d (depthwise, channels last) against the float64 reference (ref::conv), with and
// without bias, 2-D and 3-D x, the width-4 fast path and general widths; perf size: Mamba's
// conv on a training batch (B 8, L 512, C 1536 = 2 x 768, W 4).
// Tolerances: a forward output sums W + 1 fp32 terms of size ~1 (rtol 1e-5, atol 1e-6 * (W + 1));
// dx sums W products likewise; dweight and dbias are sums of B * L products, so their atol
// grows like sqrt(B * L) as in the matmul tests (1e-5 * sqrt(B * L)), rtol 1e-5.
#include <algorithm>
#include <cmath>

#include "magellano/ops/conv1d.hpp"
#include "op_case.hpp"
#include "reference.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

namespace {

// Forward reads x, w, bias and writes y: 4 (2 B L C + C W + C) bytes, 2 B L C W FLOPs.
// Backward reads x, w, dy and writes dx, dw, dbias: 4 (3 B L C + 2 C W + C) bytes,
// 4 B L C W FLOPs (dx and dw) + B L C (dbias).
Cost conv1d_cost(double b, double l, double c, double w) {
  const double n = b * l * c;
  return {4 * (2 * n + c * w + c), 2 * n * w, 4 * (3 * n + 2 * c * w + c), 4 * n * w + n};
}

CaseSpec conv1d_case(int64_t b, int64_t len, int64_t ch, int64_t w, bool bias, bool batched = true) {
  const std::string name = "causal_conv1d B" + std::to_string(b) + " L" + std::to_string(len) + " C" +
                           std::to_string(ch) + " W" + std::to_string(w) + (bias ? " bias" : "") +
                           (batched ? "" : " 2-D");
  return {name, [=] {
            const Shape xs = batched ? Shape{b, len, ch} : Shape{len, ch};
            OpCase c;
            c.inputs = {{xs, randn(b * len * ch, 51 + w)}, {Shape{ch, w}, randn(ch * w, 52 + w, 0.5)}};
            if (bias) c.inputs.push_back({Shape{ch}, randn(ch, 53)});
            c.device = [bias](auto& t) { return ops::causal_conv1d(t[0], t[1], bias ? t[2] : Tensor()); };
            c.ref = [=](auto& x) { return ref::conv(x[0], b, len, ch, x[1], w, bias ? x[2] : Vec{}); };
            c.ref_grad = [=](auto& x, const Vec& dy) {
              auto g = zeros_like(x);
              Vec none;
              ref::conv_bwd(x[0], b, len, ch, x[1], w, dy, g[0], g[1], bias ? g[2] : none);
              return g;
            };
            const double red_atol = 1e-5 * std::sqrt(double(b * len));
            c.tol = Tolerance{.fwd_rtol = 1e-5, .fwd_atol = 1e-6 * double(w + 1), .grad_rtol = 1e-5,
                              .grad_atol = std::max(red_atol, 1e-6 * double(w + 1))};
            c.sizes = {{"B", b}, {"L", len}, {"C", ch}, {"W", w}, {"bias", bias}};
            c.cost = conv1d_cost(double(b), double(len), double(ch), double(w));
            return c;
          }};
}

const RegisterOp reg{{"causal_conv1d",
                      {// the width-4 fast path
                       conv1d_case(3, 17, 13, 4, true),
                       conv1d_case(2, 129, 37, 4, true),  // B * L = 258 rows: several dweight chunks
                       conv1d_case(1, 9, 5, 4, false, false),
                       // width 4, shorter than the kernel
                       conv1d_case(3, 2, 7, 4, true), conv1d_case(2, 1, 3, 4, true),
                       // general widths
                       conv1d_case(2, 11, 7, 1, true), conv1d_case(3, 15, 9, 3, true),
                       conv1d_case(2, 19, 11, 7, true),
                       conv1d_case(3, 5, 9, 7, true),  // L < W
                       conv1d_case(1, 13, 3, 2, false, false),
                       conv1d_case(2, 67, 5, 5, true)},  // several dweight chunks, general width
                      conv1d_case(8, 512, 1536, 4, true)}};

}  // namespace

TEST(Conv1d, BadShapesAreAClearError) {
  Tensor x = upload(Shape{2, 5, 6}, randn(60, 1));
  Tensor w = upload(Shape{7, 4}, randn(28, 2));
  try {
    ops::causal_conv1d(x, w);
    FAIL() << "expected an error";
  } catch (const magellano::Error& e) {
    EXPECT_NE(std::string(e.what()).find("weight must be (C, W) = (6, W >= 1) for x (2, 5, 6), got (7, 4)"),
              std::string::npos) << e.what();
  }
  EXPECT_THROW(ops::causal_conv1d(x, upload(Shape{6, 4}, randn(24, 3)), upload(Shape{5}, randn(5, 4))),
               magellano::Error);
  EXPECT_THROW(ops::causal_conv1d(upload(Shape{60}, randn(60, 1)), w), magellano::Error);
}
