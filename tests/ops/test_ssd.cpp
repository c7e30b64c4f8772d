// Mamba2's chunked SSD scan (ops::ssd_scan) against a float64 step-by-step recurrence
// (ref::ssd_scan), forward and the gradients of all seven inputs: registered op cases, each in both
// mappings (forced, so PoCL runs the GPU mapping too); chunk sizes against each other; the final
// state; bitwise determinism; bad input. (The decoding step: test_ssd_step.cpp.) Perf size: a
// Mamba2 training shape, B 2, L 512, H 16, P 64, G 1, N 64, the device's chunk and mapping.
// Tolerances (fp32 against float64):
//   forward rtol 1e-5, atol 1e-5. The chunked form computes exp(cs[t] - cs[s]) from fp32
//   cumulative sums of dt·A (|cs| up to ~20 within a chunk here, so each exponent carries an
//   absolute error of ~1e-6, the same relative error in its decay), and each output sums
//   ~Q·N + N·P products of O(1) terms. Measured worst: 1.2e-6 at |y| = 0.13 (a tenth of the bound).
//   gradients rtol 5e-5, atol 5e-5: one more such sum (over the chunk, or over P and N), and
//   dt_bias, A_log and D sum over B·L on top. Measured worst: 1.3e-5 in dA_log at 0.64 (a sixth).
//   reference vs finite differences rtol 1e-5, atol 1e-6 (float64, step 1e-6; no sampled
//   element sits within 1e-6 of the clamp's edges, where the derivative jumps).
#include <algorithm>
#include <cmath>

#include "magellano/ops/ssd.hpp"
#include "error_text.hpp"
#include "op_case.hpp"
#include "reference.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

namespace {

struct Case {
  ref::SsdDims dims;
  int chunk = 0;  // 0: the device's default
  ops::SsdMapping mapping = ops::SsdMapping::automatic;
  ops::SsdTiles tiles = {};
  uint64_t seed = 100;
};

const Tolerance kTol{.fwd_rtol = 1e-5, .fwd_atol = 1e-5, .grad_rtol = 5e-5, .grad_atol = 5e-5,
                     .fd_rtol = 1e-5, .fd_atol = 1e-6};

const char* mapping_name(ops::SsdMapping m) {
  switch (m) {
    case ops::SsdMapping::group_per_chunk: return "group-per-chunk";
    case ops::SsdMapping::item_per_chunk: return "item-per-chunk";
    default: return "automatic";
  }
}

std::string name_of(const Case& c) {
  const auto& d = c.dims;
  std::string s = "ssd_scan B" + std::to_string(d.b) + " L" + std::to_string(d.l) + " H" + std::to_string(d.h) +
                  " P" + std::to_string(d.p) + " G" + std::to_string(d.g) + " N" + std::to_string(d.n) +
                  " chunk" + (c.chunk ? std::to_string(c.chunk) : std::string(" default"));
  if (!d.has_D) s += " no-D";
  if (!d.softplus) s += " no-softplus";
  if (d.lo > 0 || std::isfinite(d.hi)) s += " clamp";
  const auto& t = c.tiles;
  if (t.rows || t.items || t.vec || t.cols)
    s += " tiles r" + std::to_string(t.rows) + " i" + std::to_string(t.items) + " v" + std::to_string(t.vec) +
         " c" + std::to_string(t.cols);
  if (c.mapping != ops::SsdMapping::automatic) s += std::string(" ") + mapping_name(c.mapping);
  return s;
}

// Inputs in the op's order {x, dt, dt_bias, A_log, B, C, D}. dt + dt_bias spans about [-2.5, 1.5]
// so that a clamp of [0.15, 1.0] (after softplus) is active on both sides for some elements.
std::vector<Input> make_inputs(const ref::SsdDims& d, uint64_t seed) {
  const Shape x{d.b, d.l, d.h, d.p}, bc{d.b, d.l, d.g, d.n};
  Vec dt = randn(d.b * d.l * d.h, seed + 2, 0.8);
  if (!d.softplus) for (auto& v : dt) v = std::fabs(v) * 0.3 + 0.05;  // a valid step size as is
  Vec bias = uniform(d.h, seed + 3, -1.0, 0.0);
  if (!d.softplus) for (auto& v : bias) v = 0.1 * v + 0.05;
  return {{x, randn(d.b * d.l * d.h * d.p, seed + 1)},
          {Shape{d.b, d.l, d.h}, dt},
          {Shape{d.h}, bias},
          {Shape{d.h}, uniform(d.h, seed + 4, std::log(0.3), std::log(3.0))},
          {bc, randn(d.b * d.l * d.g * d.n, seed + 5, 0.5)},
          {bc, randn(d.b * d.l * d.g * d.n, seed + 6, 0.5)},
          {Shape{d.h}, uniform(d.h, seed + 7, 0.5, 1.5), d.has_D}};
}

// Variants of a case's dims. The clamp [0.15, 1.0] bites on both sides for make_inputs' dt
// (TheClampReallyBitesInTheseInputs checks it at kClamped).
ref::SsdDims clamped(ref::SsdDims d) {
  d.lo = 0.15, d.hi = 1.0;
  return d;
}
ref::SsdDims without_D(ref::SsdDims d) {
  d.has_D = false;
  return d;
}
ref::SsdDims without_softplus(ref::SsdDims d) {
  d.softplus = false;
  return d;
}
const ref::SsdDims kClamped = clamped({2, 26, 4, 3, 2, 5});

ops::SsdOptions options_of(const Case& c) {
  ops::SsdOptions o;
  o.chunk = c.chunk;
  o.dt = {c.dims.softplus, float(c.dims.lo), float(c.dims.hi)};
  o.mapping = c.mapping;
  o.tiles = c.tiles;
  return o;
}

Tensor device_op(const Case& c, const std::vector<Tensor>& t) {
  return ops::ssd_scan(t[0], t[1], t[2], t[3], t[4], t[5], c.dims.has_D ? t[6] : Tensor(), options_of(c));
}

// The cost model is ops::ssd_scan_work's (useful FLOPs of the chunked algorithm, minimum bytes).
Cost ssd_cost(const ref::SsdDims& d, int64_t chunk) {
  const ops::SsdWork w = ops::ssd_scan_work(d.b, d.l, d.h, d.p, d.g, d.n, chunk);
  return {w.fwd_bytes, w.fwd_flops, w.bwd_bytes, w.bwd_flops};
}

CaseSpec ssd_case(const Case& c) {
  return {name_of(c), [c] {
            const auto& d = c.dims;
            const int64_t chunk = std::min<int64_t>(c.chunk ? c.chunk : ops::ssd_default_chunk(test_ctx()), d.l);
            OpCase oc;
            oc.inputs = make_inputs(d, c.seed);
            oc.device = [c](const std::vector<Tensor>& t) { return device_op(c, t); };
            oc.ref = [d](const std::vector<Vec>& x) { return ref::ssd_scan(d, x); };
            oc.ref_grad = [d](const std::vector<Vec>& x, const Vec& dy) {
              auto g = ref::ssd_scan_bwd(d, x, dy);
              if (!d.has_D) g[6].clear();
              return g;
            };
            oc.tol = kTol;
            oc.sizes = {{"B", d.b}, {"L", d.l}, {"H", d.h}, {"P", d.p}, {"G", d.g}, {"N", d.n}, {"chunk", chunk},
                        {"mapping", mapping_name(c.mapping)}};
            oc.cost = ssd_cost(d, chunk);
            return oc;
          }};
}

// Each case twice: the CPU mapping, then the GPU mapping.
std::vector<CaseSpec> in_both_mappings(const std::vector<Case>& cases) {
  std::vector<CaseSpec> specs;
  for (Case c : cases)
    for (auto mapping : {ops::SsdMapping::item_per_chunk, ops::SsdMapping::group_per_chunk}) {
      c.mapping = mapping;
      specs.push_back(ssd_case(c));
    }
  return specs;
}

const RegisterOp reg{
    {"ssd_scan",
     in_both_mappings({
         {.dims = {2, 37, 3, 5, 1, 7}, .chunk = 8},  // one group, 5 chunks, the last of 5 steps; odd P and N
         {.dims = {1, 19, 4, 3, 4, 6}, .chunk = 5},  // every head its own group
         {.dims = {2, 23, 6, 4, 2, 8}, .chunk = 6},  // 3 heads per group
         {.dims = {1, 21, 9, 2, 3, 5}, .chunk = 4},  // odd H, odd N
         {.dims = {1, 9, 2, 3, 1, 4}, .chunk = 1},     // a chunk of one step
         {.dims = {2, 30, 3, 4, 3, 5}, .chunk = 7},    // an odd chunk
         {.dims = {2, 17, 2, 6, 1, 3}, .chunk = 100},  // a chunk longer than the sequence
         // the clamp active on both sides, without D, without softplus
         {.dims = kClamped, .chunk = 8},
         {.dims = without_D(kClamped), .chunk = 8, .seed = 200},
         {.dims = without_D(without_softplus({1, 14, 3, 4, 1, 4})), .chunk = 4},
         // Sizes the vectorised paths take (P, N multiples of 16), and tile knobs that leave partial
         // column tiles and row blocks: several staged tiles per product and idle work-items.
         {.dims = {1, 70, 2, 32, 1, 16}, .chunk = 32},
         {.dims = {1, 45, 2, 16, 2, 48}, .chunk = 16, .tiles = {.rows = 3, .items = 5, .vec = 4, .cols = 12}},
     }),
     ssd_case({.dims = {2, 512, 16, 64, 1, 64}})}};  // a Mamba2 training shape

std::vector<Tensor> upload_all(const std::vector<Input>& in, bool grad) {
  std::vector<Tensor> t;
  for (const auto& x : in) t.push_back(upload(x.shape, x.values, grad && x.differentiable));
  return t;
}

// Output and the seven gradients of one forward + backward.
std::vector<std::vector<float>> run_once(const Case& c, std::vector<Tensor>& t, const Tensor& dy) {
  for (auto& x : t) x.zero_grad();
  Tensor y = device_op(c, t);
  std::vector<std::vector<float>> r{y.to_host()};
  magellano::autograd::backward(y, dy);
  for (size_t i = 0; i < t.size(); ++i)
    if (c.dims.has_D || i != 6) r.push_back(t[i].grad().to_host());
  return r;
}

}  // namespace

TEST(SsdScan, TheClampReallyBitesInTheseInputs) {  // guards the clamp cases above
  const ref::SsdDims& d = kClamped;
  for (uint64_t seed : {100, 200}) {
    const auto in = make_inputs(d, seed);
    int below = 0, above = 0;
    for (int64_t i = 0; i < d.b * d.l * d.h; ++i) {
      const double v = ref::softplus(in[1].values[i] + in[2].values[i % d.h]);
      below += v < d.lo, above += v > d.hi;
    }
    EXPECT_GT(below, 5) << "seed " << seed;
    EXPECT_GT(above, 5) << "seed " << seed;
  }
}

TEST(SsdScan, ChunkSizesAndMappingsAgree) {
  const ref::SsdDims d{2, 150, 4, 16, 2, 16};
  const auto in = make_inputs(d, 7);
  auto t = upload_all(in, true);
  const Tensor dy = upload(Shape{d.b, d.l, d.h, d.p}, randn(d.b * d.l * d.h * d.p, 3));
  const auto base = run_once({d, 64, ops::SsdMapping::item_per_chunk}, t, dy);
  for (int chunk : {16, 33, 64, 150})
    for (auto m : {ops::SsdMapping::item_per_chunk, ops::SsdMapping::group_per_chunk}) {
      const auto other = run_once({d, chunk, m}, t, dy);
      for (size_t i = 0; i < base.size(); ++i)  // the same sums, grouped differently
        expect_close(other[i], to_f64(base[i]), 1e-4, 1e-4,
                     "chunk " + std::to_string(chunk) + (i ? " gradient " + std::to_string(i - 1) : " output"));
    }
  std::vector<Vec> values;
  for (auto& x : in) values.push_back(x.values);
  expect_close(base[0], ref::ssd_scan(d, values), 1e-4, 1e-4, "L = 150 forward vs float64");
}

TEST(SsdScan, FinalStateMatchesTheRecurrence) {
  for (auto m : {ops::SsdMapping::item_per_chunk, ops::SsdMapping::group_per_chunk}) {
    const ref::SsdDims d{2, 29, 4, 5, 2, 3};
    const auto in = make_inputs(d, 9);
    auto t = upload_all(in, false);
    Tensor last;
    ops::ssd_scan(t[0], t[1], t[2], t[3], t[4], t[5], t[6], {.chunk = 8, .mapping = m}, &last);
    std::vector<Vec> values;
    for (auto& x : in) values.push_back(x.values);
    Vec want;
    ref::ssd_scan(d, values, &want);
    ASSERT_EQ(last.shape(), (Shape{d.b, d.h, d.p, d.n}));
    expect_close(last.to_host(), want, 1e-4, 1e-5, "final state");
  }
}

TEST(SsdScan, ForwardAndBackwardAreBitwiseDeterministic) {
  for (auto m : {ops::SsdMapping::item_per_chunk, ops::SsdMapping::group_per_chunk}) {
    const ref::SsdDims d{2, 100, 4, 16, 2, 8};
    auto t = upload_all(make_inputs(d, 31), true);
    const Tensor dy = upload(Shape{d.b, d.l, d.h, d.p}, randn(d.b * d.l * d.h * d.p, 8));
    const auto a = run_once({d, 32, m}, t, dy), b = run_once({d, 32, m}, t, dy);
    for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], b[i]) << "tensor " << i;
  }
}

TEST(SsdScan, BadInputIsOneClearError) {
  const ref::SsdDims d{1, 4, 6, 2, 2, 3};
  auto t = upload_all(make_inputs(d, 1), false);
  using mgtest::expect_error;
  const Tensor dt5 = upload(Shape{1, 4, 5}, randn(20, 2));        // 5 heads against x's 6
  const Tensor bc4 = upload(Shape{1, 4, 4, 3}, randn(48, 3));     // 4 groups do not divide 6 heads
  const Tensor x16 = Tensor::from_host(test_ctx(), Shape{1, 4, 6, 2}, std::vector<float>(48, 0.5f),
                                       DType::f16);
  expect_error([&] { ops::ssd_scan(t[0], dt5, t[2], t[3], t[4], t[5], t[6]); }, "dt must be (1, 4, 6)");
  expect_error([&] { ops::ssd_scan(t[0], t[1], t[2], t[3], bc4, bc4, t[6]); }, "G must divide H");
  expect_error([&] { ops::ssd_scan(x16, t[1], t[2], t[3], t[4], t[5], t[6]); }, "'x' must be f32");
  expect_error([&] { ops::ssd_scan(t[0], t[1], t[2], t[3], t[4], t[5], t[2].view(Shape{6, 1})); },
               "D must be (6)");
  expect_error([&] { ops::ssd_scan(t[0].view(Shape{4, 6, 2}), t[1], t[2], t[3], t[4], t[5], t[6]); },
               "x must be (B, L, H, P)");
  expect_error([&] { ops::ssd_scan(t[0], t[1], t[2], t[3], t[4], t[5], t[6], {.chunk = -2}); },
               "chunk must be positive");
  expect_error([&] {
    ops::ssd_scan(t[0], t[1], t[2], t[3], t[4], t[5], t[6], {.tiles = {.vec = 4}});
  }, "vector width 4 must divide P = 2");
}
