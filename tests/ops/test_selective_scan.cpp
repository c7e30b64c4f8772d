// Selective scan against the float64 reference of mamba_ssm's selective_scan_ref (ref::scan:
// delta_bias, delta_softplus, z gate), forward and the gradients of all eight inputs, with
// every mapping (channels: CPUs; lanes, else states: GPUs; the lanes mapping's shuffles are
// emulated through local memory on PoCL, the same code otherwise); the mappings against each other; the step
// kernel against the parallel forward; chunked recompute against a single chunk. Perf size:
// `magellano bench scan`'s first shape (B 4, L 512, E 1024, N 16).
// Tolerances: the forward is an L-step fp32 recurrence (each step one exp and an N-term dot),
// relative error grows ~linearly in L: rtol 1e-5, atol 1e-5 at L <= 40. Gradients add sums
// over L (for A, D, bias over B·L, for B and C over E): rtol 1e-4, atol 1e-4.
#include <cmath>

#include "magellano/ops/selective_scan.hpp"
#include "op_case.hpp"
#include "reference.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

namespace {

struct Sizes {
  int64_t b, l, e, n;
  bool z, bias, softplus;
  int chunk;
  ops::ScanMapping mapping = ops::ScanMapping::automatic;
};

Vec ref_forward(const Sizes& s, const std::vector<Vec>& x) {
  return ref::scan({s.b, s.l, s.e, s.n, s.z, s.bias, s.softplus}, x);
}

std::vector<Input> make_inputs(const Sizes& s, uint64_t seed) {
  const Shape ble{s.b, s.l, s.e}, bln{s.b, s.l, s.n};
  Vec A = uniform(s.e * s.n, seed + 3, 0.2, 2.0);
  for (auto& a : A) a = -a;
  Vec delta = randn(s.b * s.l * s.e, seed + 2, 0.5);
  if (!s.softplus) for (auto& d : delta) d = std::fabs(d) * 0.2 + 0.01;  // a valid step size
  return {{ble, randn(s.b * s.l * s.e, seed + 1)},
          {ble, delta},
          {Shape{s.e, s.n}, A},
          {bln, randn(s.b * s.l * s.n, seed + 4, 0.5)},
          {bln, randn(s.b * s.l * s.n, seed + 5, 0.5)},
          {Shape{s.e}, uniform(s.e, seed + 6, 0.5, 1.5)},
          {ble, s.z ? randn(s.b * s.l * s.e, seed + 7) : Vec(s.b * s.l * s.e, 0.0), s.z},
          {Shape{s.e}, s.bias ? randn(s.e, seed + 8, 0.3) : Vec(s.e, 0.0), s.bias}};
}

// Per (b, t, e): N states, each an exp, two multiplies and an add, and an N-term dot with C:
// ~6 N FLOPs, plus the gate and skip. Minimum bytes as `magellano bench scan` counts them: the
// forward reads u, delta, z (B L E), B and C (B L N) and writes y: 4 (4 B L E + 2 B L N); the
// backward (which recomputes the forward and runs the recurrence backwards, ~3x the FLOPs)
// reads u, delta, z, dy, B, C and writes du, ddelta, dz, dB, dC: 4 (7 B L E + 4 B L N).
Cost scan_cost(const Sizes& s) {
  const double ble = double(s.b) * s.l * s.e, bln = double(s.b) * s.l * s.n;
  const double flops = ble * (6.0 * s.n + 6.0);
  return {4 * (4 * ble + 2 * bln), flops, 4 * (7 * ble + 4 * bln), 3 * flops};
}

CaseSpec scan_case(const Sizes& s) {
  const std::string name = "selective_scan B" + std::to_string(s.b) + " L" + std::to_string(s.l) + " E" +
                           std::to_string(s.e) + " N" + std::to_string(s.n) + " chunk" + std::to_string(s.chunk) +
                           (s.z ? " z" : "") + (s.bias ? " bias" : "") + (s.softplus ? " softplus" : "") +
                           (s.mapping == ops::ScanMapping::states  ? " states-mapping"
                            : s.mapping == ops::ScanMapping::lanes ? " lanes-mapping"
                                                                   : "");
  return {name, [s] {
            OpCase c;
            c.inputs = make_inputs(s, 100 + s.l);
            c.device = [s](const std::vector<Tensor>& t) {
              return ops::selective_scan(t[0], t[1], t[2], t[3], t[4], t[5], s.z ? t[6] : Tensor(),
                                         s.bias ? t[7] : Tensor(), {s.softplus, s.chunk, s.mapping});
            };
            c.ref = [s](auto& x) { return ref_forward(s, x); };
            c.ref_grad = [s](auto& x, const Vec& d) {
              auto g = ref::scan_bwd({s.b, s.l, s.e, s.n, s.z, s.bias, s.softplus}, x, d);
              if (!s.z) g[6].clear();
              if (!s.bias) g[7].clear();
              return g;
            };
            c.tol = Tolerance{.fwd_rtol = 1e-5, .fwd_atol = 1e-5, .grad_rtol = 1e-4, .grad_atol = 1e-4,
                              .fd_rtol = 1e-5, .fd_atol = 1e-6};
            c.sizes = {{"B", s.b}, {"L", s.l}, {"E", s.e}, {"N", s.n}, {"chunk", s.chunk}};
            c.cost = scan_cost(s);
            return c;
          }};
}

const RegisterOp reg{{"selective_scan",
                      {scan_case({2, 37, 5, 16, true, true, true, 8}),  // 5 chunks, the last one partial
                       // a sequence shorter than a chunk, several batch rows, both mappings
                       scan_case({3, 10, 16, 8, true, true, true, 64}),
                       scan_case({3, 10, 16, 8, true, true, true, 64, ops::ScanMapping::states}),
                       scan_case({3, 11, 7, 3, false, false, true, 4}),  // odd state size, no gate, no bias
                       scan_case({1, 9, 4, 5, true, false, false, 64}),  // without softplus, one chunk
                       // The GPU mapping (one work-item per state, local-memory sums), forced so
                       // PoCL runs it too.
                       scan_case({2, 37, 8, 16, true, true, true, 8, ops::ScanMapping::states}),    // 8 channels a group
                       scan_case({3, 11, 12, 3, false, false, true, 4, ops::ScanMapping::states}),  // 4 channels a group
                       scan_case({1, 9, 32, 5, true, false, false, 64, ops::ScanMapping::states}),  // 16 channels, 2 groups
                       // The lanes mapping (4 states a work-item; stretches of 16 steps in registers):
                       // chunks shorter than a stretch and a partial last chunk; chunks of 2.5
                       // stretches over 2 groups; every lane count (N 4, 8, 16, 32, 64: 1 to 16 lanes
                       // a channel, 1 or 2 warps a group, 1 or 2 values kept per lane by the
                       // reduce-scatter); without gate, bias or softplus.
                       scan_case({2, 37, 32, 16, true, true, true, 8, ops::ScanMapping::lanes}),
                       scan_case({3, 45, 64, 16, true, true, true, 40, ops::ScanMapping::lanes}),
                       scan_case({1, 21, 16, 8, false, false, true, 64, ops::ScanMapping::lanes}),
                       scan_case({2, 19, 8, 32, true, false, false, 16, ops::ScanMapping::lanes}),
                       scan_case({1, 33, 128, 4, true, true, true, 20, ops::ScanMapping::lanes}),
                       scan_case({1, 7, 2, 64, true, true, true, 64, ops::ScanMapping::lanes})},
                      scan_case({4, 512, 1024, 16, true, true, true, 64})}};  // `bench scan`'s first shape

}  // namespace

TEST(SelectiveScan, MappingsAgree) {
  const Sizes s{2, 130, 48, 16, true, true, true, 64};
  auto in = make_inputs(s, 21);
  std::vector<Tensor> t;
  for (auto& x : in) t.push_back(upload(x.shape, x.values, true));
  std::vector<std::vector<float>> res[3];
  for (int k = 0; k < 3; ++k) {
    for (auto& x : t) x.zero_grad();
    const auto m = k == 2 ? ops::ScanMapping::lanes : k ? ops::ScanMapping::states : ops::ScanMapping::channels;
    Tensor out = ops::selective_scan(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], {true, 64, m});
    res[k].push_back(out.to_host());
    magellano::autograd::backward(out, upload(out.shape(), randn(out.numel(), 5)));
    for (auto& x : t) res[k].push_back(x.grad().to_host());
  }
  for (int k = 1; k < 3; ++k)
    for (size_t i = 0; i < res[0].size(); ++i)  // the same sums, grouped differently
      expect_close(res[k][i], to_f64(res[0][i]), 1e-5, 1e-5,
                   (k == 2 ? "lanes " : "states ") + (i ? "gradient " + std::to_string(i - 1) : "output"));
}

TEST(SelectiveScan, ChunkSizeDoesNotChangeResults) {
  const Sizes s{2, 300, 9, 16, true, true, true, 64};
  auto in = make_inputs(s, 7);
  std::vector<Tensor> t;
  for (auto& x : in) t.push_back(upload(x.shape, x.values, true));
  std::vector<std::vector<float>> grads[2];
  std::vector<float> outs[2];
  for (int k = 0; k < 2; ++k) {
    for (auto& x : t) x.zero_grad();
    Tensor out = ops::selective_scan(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], {true, k ? 300 : 17});
    outs[k] = out.to_host();
    magellano::autograd::backward(out, upload(out.shape(), randn(out.numel(), 3)));
    for (auto& x : t) grads[k].push_back(x.grad().to_host());
  }
  EXPECT_EQ(outs[0], outs[1]);  // the forward does not depend on the chunk at all
  for (size_t i = 0; i < t.size(); ++i)
    expect_close(grads[0][i], to_f64(grads[1][i]), 1e-4, 1e-4, "grad " + std::to_string(i) + " chunk 17 vs 300");
  expect_close(outs[0], ref_forward(s, [&] { std::vector<Vec> v; for (auto& x : in) v.push_back(x.values); return v; }()),
               1e-4, 1e-4, "L=300 forward vs float64");
}

TEST(SelectiveScan, StepsReproduceTheParallelForwardAndItsState) {
  const Sizes s{2, 64, 6, 16, true, true, true, 16};
  auto in = make_inputs(s, 11);
  std::vector<Tensor> t;
  for (auto& x : in) t.push_back(upload(x.shape, x.values));
  Tensor h_last;
  Tensor par = ops::selective_scan(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], {}, &h_last);
  const auto par_host = par.to_host();
  Tensor h = Tensor::zeros(test_ctx(), Shape{s.b, s.e, s.n});
  auto slice_t = [&](const Vec& v, int64_t width, int64_t step) {  // (B, L, W) -> (B, W) at step
    Vec r;
    for (int64_t b = 0; b < s.b; ++b)
      for (int64_t k = 0; k < width; ++k) r.push_back(v[(b * s.l + step) * width + k]);
    return r;
  };
  for (int64_t step = 0; step < s.l; ++step) {
    Tensor out = ops::selective_scan_step(
        upload(Shape{s.b, s.e}, slice_t(in[0].values, s.e, step)),
        upload(Shape{s.b, s.e}, slice_t(in[1].values, s.e, step)), t[2],
        upload(Shape{s.b, s.n}, slice_t(in[3].values, s.n, step)),
        upload(Shape{s.b, s.n}, slice_t(in[4].values, s.n, step)), t[5],
        upload(Shape{s.b, s.e}, slice_t(in[6].values, s.e, step)), t[7], h);
    const auto got = out.to_host();
    const Vec want = slice_t(to_f64(par_host), s.e, step);
    // The same operations in the same order, but two separately compiled kernels: PoCL
    // vectorises them differently (vector vs scalar exp, multiply-add contraction), which
    // moves results by a few ulp per step. Over 64 steps that stays below 1e-5 relative.
    expect_close(got, want, 1e-5, 1e-6, "step " + std::to_string(step));
  }
  expect_close(h.to_host(), to_f64(h_last.to_host()), 1e-5, 1e-6, "state after the last step");
}

TEST(SelectiveScan, ForwardAndBackwardAreBitwiseDeterministic) {
  for (auto mapping : {ops::ScanMapping::channels, ops::ScanMapping::states, ops::ScanMapping::lanes}) {
    const Sizes s{2, 150, 16, 16, true, true, true, 64};
    auto in = make_inputs(s, 31);
    std::vector<Tensor> t;
    for (auto& x : in) t.push_back(upload(x.shape, x.values, true));
    const Tensor dout = upload(Shape{s.b, s.l, s.e}, randn(s.b * s.l * s.e, 8));
    std::vector<std::vector<float>> runs[2];
    for (int k = 0; k < 2; ++k) {
      for (auto& x : t) x.zero_grad();
      Tensor out = ops::selective_scan(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], {true, 64, mapping});
      runs[k].push_back(out.to_host());
      magellano::autograd::backward(out, dout);
      for (auto& x : t) runs[k].push_back(x.grad().to_host());
    }
    for (size_t i = 0; i < runs[0].size(); ++i) EXPECT_EQ(runs[0][i], runs[1][i]) << "tensor " << i;
  }
}

TEST(SelectiveScan, BadShapesAreClearErrors) {
  Tensor u = upload(Shape{1, 4, 3}, randn(12, 1)), A = upload(Shape{3, 2}, randn(6, 2));
  Tensor bad = upload(Shape{1, 4, 5}, randn(20, 3)), D = upload(Shape{3}, randn(3, 4));
  try {
    ops::selective_scan(u, u, A, bad, bad, D, Tensor(), Tensor());
    FAIL();
  } catch (const magellano::Error& e) {
    EXPECT_NE(std::string(e.what()).find("B must be (1, 4, 2)"), std::string::npos) << e.what();
  }
}
