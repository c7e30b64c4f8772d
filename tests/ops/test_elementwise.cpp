// add / mul / scale (with reshape) against their float64 references (ref::add, ref::mul,
// ref::scale), same shapes and broadcast rows; cast to and from fp16 and fp16 gradient
// accumulation bit for bit against the host's rounding. Perf size: 8 x 512 rows of 768.
// Tolerances: one fp32 rounding per element, so forward rtol 1e-6 would do; we use the
// harness defaults (1e-5 forward, 1e-4 gradients) except where a column sum makes a gradient a
// long reduction.
#include "magellano/io/st_dtype.hpp"
#include "magellano/ops/elementwise.hpp"
#include "op_case.hpp"
#include "reference.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

namespace {

const Shape kPerf{8 * 512, 768};

// a + alpha * b (b of shape `bs`, broadcast over a's rows when smaller). Forward reads a, b and
// writes y: 4 (2 n + nb) bytes, 2 n FLOPs; backward writes da (a copy of dy) and db (alpha dy,
// column sums when broadcast): 4 (3 n + nb) bytes, 2 n FLOPs.
CaseSpec add_case(const Shape& s, const Shape& bs, double alpha, uint64_t seed) {
  return {"add " + dims(s) + " + " + dims(bs), [=] {
            OpCase c;
            c.inputs = {{s, randn(s.numel(), seed)}, {bs, randn(bs.numel(), seed + 1)}};
            c.device = [alpha](auto& t) { return ops::add(t[0], t[1], float(alpha)); };
            c.ref = [alpha](auto& x) { return ref::add(x[0], x[1], alpha); };
            c.ref_grad = [alpha](auto& x, const Vec& d) {
              auto g = zeros_like(x);
              ref::add_bwd(x[0], x[1], alpha, d, g[0], g[1]);
              return g;
            };
            const double n = double(s.numel()), nb = double(bs.numel());
            c.sizes = {{"a", dims(s)}, {"b", dims(bs)}};
            c.cost = {4 * (2 * n + nb), 2 * n, 4 * (3 * n + nb), 2 * n};
            return c;
          }};
}

// a * b. Forward reads a, b and writes y: 4 (2 n + nb) bytes, n FLOPs; backward reads a, b, dy
// and writes da, db: 4 (4 n + 2 nb) bytes, 2 n FLOPs (+ n for db's sums when broadcast).
CaseSpec mul_case(const Shape& s, const Shape& bs, uint64_t seed, const Tolerance& tol = {}) {
  return {"mul " + dims(s) + " * " + dims(bs), [=] {
            OpCase c;
            c.inputs = {{s, randn(s.numel(), seed)}, {bs, randn(bs.numel(), seed + 1)}};
            c.device = [](auto& t) { return ops::mul(t[0], t[1]); };
            c.ref = [](auto& x) { return ref::mul(x[0], x[1]); };
            c.ref_grad = [](auto& x, const Vec& d) {
              auto g = zeros_like(x);
              ref::mul_bwd(x[0], x[1], d, g[0], g[1]);
              return g;
            };
            c.tol = tol;
            const double n = double(s.numel()), nb = double(bs.numel());
            c.sizes = {{"a", dims(s)}, {"b", dims(bs)}};
            c.cost = {4 * (2 * n + nb), n, 4 * (4 * n + 2 * nb), 3 * n};
            return c;
          }};
}

// -1.5 * reshape(x): forward and backward each read and write n values, n FLOPs.
CaseSpec scale_case(const Shape& s, const Shape& as, uint64_t seed) {
  return {"scale reshape " + dims(s) + " as " + dims(as), [=] {
            OpCase c;
            c.inputs = {{s, randn(s.numel(), seed)}};
            c.device = [as](auto& t) { return ops::scale(ops::reshape(t[0], as), -1.5f); };
            c.ref = [](auto& x) { return ref::scale(x[0], -1.5); };
            c.ref_grad = [](auto&, const Vec& d) { return std::vector<Vec>{ref::scale(d, -1.5)}; };
            const double n = double(s.numel());
            c.sizes = {{"x", dims(s)}};
            c.cost = {4 * 2 * n, n, 4 * 2 * n, n};
            return c;
          }};
}

const RegisterOp reg_add{{"add",
                          {add_case(Shape{3, 7, 13}, Shape{3, 7, 13}, 0.5, 1),
                           add_case(Shape{37, 19}, Shape{19}, 1.0, 3)},  // row broadcast
                          add_case(kPerf, kPerf, 1.0, 5)}};

const RegisterOp reg_mul{{"mul",
                          {mul_case(Shape{5, 11, 17}, Shape{5, 11, 17}, 5),
                           mul_case(Shape{5, 11, 17}, Shape{1, 17}, 7, Tolerance{.grad_rtol = 1e-4, .grad_atol = 1e-4})},
                          mul_case(kPerf, kPerf, 9)}};

const RegisterOp reg_scale{{"scale", {scale_case(Shape{9, 10}, Shape{3, 30}, 9)},
                            scale_case(kPerf, Shape{8, 512, 768}, 11)}};

// cast f32 -> f16 -> f32 (perf only: CastRoundTripIsF16Rounding below checks it bit for bit).
// Each direction reads and writes n values: 4 n + 2 n bytes; the backward runs the same two.
CaseSpec cast_round_trip_case(const Shape& s) {
  return {"cast f32 f16 f32 " + dims(s), [=] {
            OpCase c;
            c.inputs = {{s, randn(s.numel(), 13)}};
            c.device = [](auto& t) { return ops::cast(ops::cast(t[0], DType::f16), DType::f32); };
            const double n = double(s.numel());
            c.sizes = {{"x", dims(s)}};
            c.cost = {2 * 6 * n, 0, 2 * 6 * n, 0};
            return c;
          }};
}
const RegisterOp reg_cast{{"cast", {}, cast_round_trip_case(kPerf)}};

}  // namespace

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
