// add / mul / scale / reshape / cast against float64 references.
// Tolerances: one fp32 rounding per element, so forward rtol 1e-6 would do; we use the
// harness defaults (1e-5 forward, 1e-4 gradients) except where a column sum makes a gradient a
// long reduction.
#include "harness.hpp"
#include "magellano/io/st_dtype.hpp"
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

namespace {
// f32 -> f16 -> f32 rounds as the host does, from and to views at odd offsets.
void cast_round_trip() {
  const Vec x = randn(1001, 10, 3.0);
  Tensor t = upload(Shape{1001}, x);
  Tensor h = ops::cast(t, DType::f16);
  EXPECT_EQ(h.dtype(), DType::f16);
  EXPECT_EQ(h.nbytes(), 2002u);
  // fp16 has an 11-bit significand: relative rounding error at most 2^-11.
  expect_close(ops::cast(h, DType::f32).to_host(), x, 1.0 / 2048, 1e-7, "f32 -> f16 -> f32");
  // Exactly the host's round-to-nearest-even, also from and to views at odd offsets (with 8
  // elements per work-item a last partial group goes element by element; any offset works).
  const Tensor part = t.narrow_rows(3, 1000);  // 997 elements from element 3
  const auto want = part.to_host();
  const auto got = ops::cast(ops::cast(part, DType::f16).narrow_rows(0, 997), DType::f32).to_host();
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_EQ(got[i], magellano::io::f16_to_f32(magellano::io::f32_to_f16(want[i]))) << i;
  const auto back = ops::cast(h.narrow_rows(5, 1001), DType::f32).to_host();
  const auto all = ops::cast(h, DType::f32).to_host();
  for (size_t i = 0; i < back.size(); ++i) ASSERT_EQ(back[i], all[i + 5]) << i;
}

// Forces cl/half.cl's elements per work-item for a scope (0 afterwards: by device).
struct HalfVec {
  explicit HalfVec(int vec) { ops::force_half_vec(vec); }
  ~HalfVec() { ops::force_half_vec(0); }
};
}  // namespace

TEST(Elementwise, CastRoundTripIsF16Rounding) {
  for (int vec : {0, 1, 8}) {  // the device's mapping, then both mappings of cl/half.cl
    SCOPED_TRACE("elements per work-item " + std::to_string(vec));
    HalfVec forced(vec);
    cast_round_trip();
  }
}

TEST(Elementwise, AccumulateIntoAnFp16Gradient) {
  // ops::accumulate_grad into an fp16 leaf: fp16(fp16(a) + s * b), the sum in fp32, with both
  // mappings of cl/half.cl; 1003 elements = 125 groups of 8 and a tail of 3.
  const Vec a = randn(1003, 11, 0.5), b = randn(1003, 12, 0.5);
  for (int vec : {1, 8}) {
    HalfVec forced(vec);
    Tensor w = Tensor::from_host(test_ctx(), Shape{1003}, to_f32(a), DType::f16);
    w.set_requires_grad(true);
    ops::accumulate_grad(w.meta(), upload(Shape{1003}, a));
    ops::accumulate_grad(w.meta(), upload(Shape{1003}, b), -0.25f);
    const auto g = w.grad().to_host();
    for (size_t i = 0; i < g.size(); ++i) {
      const float first = magellano::io::f16_to_f32(magellano::io::f32_to_f16(float(a[i])));
      ASSERT_EQ(g[i], magellano::io::f16_to_f32(magellano::io::f32_to_f16(first + -0.25f * float(b[i]))))
          << "vec " << vec << " [" << i << "]";
    }
  }
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
