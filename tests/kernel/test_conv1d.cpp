// causal_conv1d (depthwise, channels last) against a float64 reference.
// Tolerances: a forward output sums W + 1 fp32 terms of size ~1 (rtol 1e-5, atol 1e-6 * (W + 1));
// dx sums W products likewise; dweight and dbias are sums of B * L products, so their atol
// grows like sqrt(B * L) as in the matmul tests (1e-5 * sqrt(B * L)), rtol 1e-5.
#include <algorithm>
#include <cmath>

#include "harness.hpp"
#include "magellano/ops/conv1d.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

namespace {

void run(int64_t b, int64_t len, int64_t ch, int64_t w, bool bias, bool batched = true) {
  const std::string name = "causal_conv1d B" + std::to_string(b) + " L" + std::to_string(len) +
                           " C" + std::to_string(ch) + " W" + std::to_string(w) +
                           (bias ? " bias" : "") + (batched ? "" : " 2-D");
  const Shape xs = batched ? Shape{b, len, ch} : Shape{len, ch};
  std::vector<Input> in = {{xs, randn(b * len * ch, 51 + w)},
                           {Shape{ch, w}, randn(ch * w, 52 + w, 0.5)}};
  if (bias) in.push_back({Shape{ch}, randn(ch, 53)});
  auto fwd = [=](const std::vector<Vec>& x) {
    Vec y(b * len * ch);
    for (int64_t bb = 0; bb < b; ++bb)
      for (int64_t t = 0; t < len; ++t)
        for (int64_t c = 0; c < ch; ++c) {
          double s = bias ? x[2][c] : 0.0;
          for (int64_t k = 0; k < w; ++k) {
            const int64_t tt = t - (w - 1) + k;
            if (tt >= 0) s += x[1][c * w + k] * x[0][(bb * len + tt) * ch + c];
          }
          y[(bb * len + t) * ch + c] = s;
        }
    return y;
  };
  auto bwd = [=](const std::vector<Vec>& x, const Vec& d) {
    Vec dx(x[0].size(), 0.0), dw(x[1].size(), 0.0), db(bias ? ch : 0, 0.0);
    for (int64_t bb = 0; bb < b; ++bb)
      for (int64_t t = 0; t < len; ++t)
        for (int64_t c = 0; c < ch; ++c) {
          const double g = d[(bb * len + t) * ch + c];
          if (bias) db[c] += g;
          for (int64_t k = 0; k < w; ++k) {
            const int64_t tt = t - (w - 1) + k;
            if (tt < 0) continue;
            dx[(bb * len + tt) * ch + c] += g * x[1][c * w + k];
            dw[c * w + k] += g * x[0][(bb * len + tt) * ch + c];
          }
        }
    std::vector<Vec> out = {dx, dw};
    if (bias) out.push_back(db);
    return out;
  };
  const double red_atol = 1e-5 * std::sqrt(double(b * len));
  check_op(name, in,
           [bias](auto& t) { return ops::causal_conv1d(t[0], t[1], bias ? t[2] : Tensor()); },
           fwd, bwd,
           Tolerance{.fwd_rtol = 1e-5, .fwd_atol = 1e-6 * double(w + 1), .grad_rtol = 1e-5,
                     .grad_atol = std::max(red_atol, 1e-6 * double(w + 1))});
}

}  // namespace

TEST(Conv1d, Width4FastPath) {
  run(3, 17, 13, 4, true);
  run(2, 129, 37, 4, true);  // B * L = 258 rows: several dweight chunks
  run(1, 9, 5, 4, false, false);
}

TEST(Conv1d, Width4ShorterThanKernel) {
  run(3, 2, 7, 4, true);
  run(2, 1, 3, 4, true);
}

TEST(Conv1d, GeneralWidths) {
  run(2, 11, 7, 1, true);
  run(3, 15, 9, 3, true);
  run(2, 19, 11, 7, true);
  run(3, 5, 9, 7, true);   // L < W
  run(1, 13, 3, 2, false, false);
  run(2, 67, 5, 5, true);  // several dweight chunks, general width
}

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
