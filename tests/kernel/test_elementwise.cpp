// add / mul / scale / reshape / cast against float64 references.
// Tolerances: one fp32 rounding per element, so forward rtol 1e-6 would do; we use the
// harness defaults (1e-5 forward, 1e-4 gradients) except where a column sum makes a gradient a
// long reduction.
#include "harness.hpp"
#include "magellano/ops/elementwise.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

namespace {
// A broadcast gradient: sum over rows of dout (* a).
Vec colsum(const Vec& v, size_t cols) {
  Vec s(cols, 0.0);
  for (size_t i = 0; i < v.size(); ++i) s[i % cols] += v[i];
  return s;
}
}  // namespace

TEST(Elementwise, AddSameShape) {
  const Shape s{3, 7, 13};
  const size_t n = s.numel();
  check_op("add", {{s, randn(n, 1)}, {s, randn(n, 2)}},
           [](auto& t) { return ops::add(t[0], t[1], 0.5f); },
           [](auto& x) { Vec y(x[0].size()); for (size_t i = 0; i < y.size(); ++i) y[i] = x[0][i] + 0.5 * x[1][i]; return y; },
           [](auto& x, const Vec& d) { Vec db(d.size()); for (size_t i = 0; i < d.size(); ++i) db[i] = 0.5 * d[i]; return std::vector<Vec>{d, db}; });
}

TEST(Elementwise, AddRowBroadcast) {
  const Shape s{37, 19};
  check_op("add broadcast", {{s, randn(s.numel(), 3)}, {Shape{19}, randn(19, 4)}},
           [](auto& t) { return ops::add(t[0], t[1]); },
           [](auto& x) { Vec y(x[0].size()); for (size_t i = 0; i < y.size(); ++i) y[i] = x[0][i] + x[1][i % 19]; return y; },
           [](auto& x, const Vec& d) { return std::vector<Vec>{d, colsum(d, 19)}; });
}

TEST(Elementwise, MulSameShapeAndBroadcast) {
  const Shape s{5, 11, 17};
  const size_t n = s.numel();
  check_op("mul", {{s, randn(n, 5)}, {s, randn(n, 6)}},
           [](auto& t) { return ops::mul(t[0], t[1]); },
           [](auto& x) { Vec y(x[0].size()); for (size_t i = 0; i < y.size(); ++i) y[i] = x[0][i] * x[1][i]; return y; },
           [](auto& x, const Vec& d) {
             Vec da(d.size()), db(d.size());
             for (size_t i = 0; i < d.size(); ++i) da[i] = d[i] * x[1][i], db[i] = d[i] * x[0][i];
             return std::vector<Vec>{da, db};
           });
  check_op("mul broadcast", {{s, randn(n, 7)}, {Shape{1, 17}, randn(17, 8)}},
           [](auto& t) { return ops::mul(t[0], t[1]); },
           [](auto& x) { Vec y(x[0].size()); for (size_t i = 0; i < y.size(); ++i) y[i] = x[0][i] * x[1][i % 17]; return y; },
           [](auto& x, const Vec& d) {
             Vec da(d.size()), p(d.size());
             for (size_t i = 0; i < d.size(); ++i) da[i] = d[i] * x[1][i % 17], p[i] = d[i] * x[0][i];
             return std::vector<Vec>{da, colsum(p, 17)};
           }, Tolerance{.grad_rtol = 1e-4, .grad_atol = 1e-4});
}

TEST(Elementwise, ScaleAndReshape) {
  const Shape s{9, 10};
  check_op("scale∘reshape", {{s, randn(90, 9)}},
           [](auto& t) { return ops::scale(ops::reshape(t[0], Shape{3, 30}), -1.5f); },
           [](auto& x) { Vec y = x[0]; for (auto& v : y) v *= -1.5; return y; },
           [](auto& x, const Vec& d) { Vec g = d; for (auto& v : g) v *= -1.5; return std::vector<Vec>{g}; });
}

TEST(Elementwise, CastRoundTripIsF16Rounding) {
  const Vec x = randn(1001, 10, 3.0);
  Tensor t = upload(Shape{1001}, x);
  Tensor h = ops::cast(t, DType::f16);
  EXPECT_EQ(h.dtype(), DType::f16);
  EXPECT_EQ(h.nbytes(), 2002u);
  // fp16 has an 11-bit significand: relative rounding error at most 2^-11.
  expect_close(ops::cast(h, DType::f32).to_host(), x, 1.0 / 2048, 1e-7, "f32 -> f16 -> f32");
}

TEST(Elementwise, BadBroadcastIsAClearError) {
  Tensor a = upload(Shape{4, 5}, randn(20, 1));
  Tensor b = upload(Shape{4}, randn(4, 2));
  try {
    ops::add(a, b);
    FAIL() << "expected an error";
  } catch (const magellano::Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot broadcast (4) to (4, 5)"), std::string::npos) << e.what();
  }
}
