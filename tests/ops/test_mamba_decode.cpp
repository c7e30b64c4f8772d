// ops::mamba_ssm_step against float64 (ref::mamba_ssm_step) as registered op cases (no autograd:
// forward only, poisoned outputs, both kernel mappings): each case's output is the step's result
// followed by the state it leaves, so the in-place update is checked too. Odd E (and E not a
// multiple of the cpu mapping's 16 channels or its groups), state sizes 1, 5, 16, 21 and 32 (the
// cpu kernel's float16 blocks and their padded rest), dt ranks 1 to 64 (odd ones past 16: its
// float16 chunks and their rest); two steps in a row of in_proj + conv (ops::decode_gemv_conv,
// its op cases are in test_decode_gemv.cpp), x_proj (ops::decode_gemv) and the ssm step equal
// the composed training ops (causal_conv1d_step + silu, selective_scan_step) in both mappings;
// each mapping repeats its bits and the two agree; deliberately broken variants in both
// mappings; bad input.
// Perf size: one phase1 Mamba layer (E 896, N 16, R 28) at batch 1.
// Tolerances: rtol 1e-5, atol 1e-5: an R-term dot, N exponentials and an N-term sum in fp32 per
// channel, all O(1) (dbc U(±1)).
#include "error_text.hpp"
#include "magellano/ops/activation.hpp"
#include "magellano/ops/conv1d.hpp"
#include "magellano/ops/decode_gemv.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/mamba_decode.hpp"
#include "magellano/ops/matmul.hpp"
#include "magellano/ops/selective_scan.hpp"
#include "magellano/ops/shape.hpp"
#include "op_case.hpp"
#include "reference.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

namespace {

CaseSpec ssm_case(int64_t b, int64_t e, int64_t n, int64_t r, uint64_t seed = 1) {
  const std::string name = "mamba_ssm_step B " + std::to_string(b) + " E " + std::to_string(e) + " N " +
                           std::to_string(n) + " R " + std::to_string(r);
  return {name, [=] {
            OpCase c;
            Vec A(e * n);  // −exp(A_log) of S4D-real's A_log, perturbed
            for (int64_t i = 0; i < e * n; ++i) A[i] = -double(i % n + 1) * std::exp(0.1 * std::sin(double(i)));
            c.inputs = {{Shape{b, e}, randn(b * e, seed), false},
                        {Shape{b, r + 2 * n}, uniform(b * (r + 2 * n), seed + 1, -1.0, 1.0), false},
                        {Shape{e, r}, uniform(e * r, seed + 2, -0.5, 0.5), false},
                        {Shape{e}, uniform(e, seed + 3, -4.0, 0.5), false},
                        {Shape{e, n}, A, false},
                        {Shape{e}, randn(e, seed + 4), false},
                        {Shape{b, 2 * e}, randn(b * 2 * e, seed + 5), false},
                        {Shape{b, e, n}, randn(b * e * n, seed + 6), false}};
            c.device = [](const std::vector<Tensor>& t) {
              const Tensor y = ops::mamba_ssm_step(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]);
              return joined(y, t[7]);
            };
            c.ref = [=](const std::vector<Vec>& x) {
              Vec h = x[7];
              const Vec y = ref::mamba_ssm_step(x[0], x[1], x[2], x[3], x[4], x[5], x[6], h, b, e, r, n);
              return joined(y, h);
            };
            c.ref_grad = [](const std::vector<Vec>& x, const Vec&) { return std::vector<Vec>(x.size()); };
            c.tol = {.fwd_rtol = 1e-5, .fwd_atol = 1e-5};
            c.sizes = {{"B", b}, {"E", e}, {"N", n}, {"R", r}};
            // h read and written, A, dt_w and dbc read; ~(2R + 8N + 12) FLOPs per channel.
            c.cost = {4.0 * (2 * b * e * n + e * n + e * r + 5 * b * e + b * (r + 2 * n)),
                      double(b * e * (2 * r + 8 * n + 12)), 0, 0};
            return c;
          }};
}

const RegisterOp reg_ssm{{"mamba_ssm_step",
                          {ssm_case(1, 7, 5, 1), ssm_case(3, 33, 16, 28), ssm_case(2, 65, 1, 3),
                           ssm_case(16, 12, 16, 2), ssm_case(2, 200, 16, 7), ssm_case(5, 45, 21, 35),
                           ssm_case(1, 131, 32, 17), ssm_case(3, 70, 16, 64)},
                          ssm_case(1, 896, 16, 28)}};

}  // namespace

// Two steps of the fused kernels (in_proj + conv, x_proj, the ssm step) equal the training ops
// composed (the unfused decode path), in both kernel mappings.
TEST(MambaDecode, TwoStepsEqualTheComposedOps) {
  const int64_t B = 3, E = 19, N = 16, R = 5, W = 4, K = 11;
  Tensor in_w = upload(Shape{2 * E, K}, uniform(2 * E * K, 30, -0.3, 0.3));
  Tensor x_w = upload(Shape{R + 2 * N, E}, uniform((R + 2 * N) * E, 31, -0.3, 0.3));
  Tensor conv_w = upload(Shape{E, W}, uniform(E * W, 1, -0.7, 0.7)), conv_b = upload(Shape{E}, randn(E, 2, 0.3));
  Tensor dt_w = upload(Shape{E, R}, uniform(E * R, 3, -0.5, 0.5)), dt_b = upload(Shape{E}, uniform(E, 4, -4, 0.5));
  Vec al(E * N);
  for (int64_t i = 0; i < E * N; ++i) al[i] = std::log(double(i % N + 1));
  Tensor A_log = upload(Shape{E, N}, al), D = upload(Shape{E}, randn(E, 5));
  Tensor A = ops::scale(ops::exp(A_log), -1.0f);
  for (auto mapping : {magellano::ops::KernelMapping::cpu, magellano::ops::KernelMapping::gpu}) {
    ForcedMapping forced(mapping);
    Tensor conv1 = upload(Shape{B, E, W - 1}, randn(B * E * (W - 1), 6));
    Tensor h1 = upload(Shape{B, E, N}, randn(B * E * N, 7));
    Tensor conv2 = upload(Shape{B, E, W - 1}, randn(B * E * (W - 1), 6));
    Tensor h2 = upload(Shape{B, E, N}, randn(B * E * N, 7));
    for (int step = 0; step < 2; ++step) {
      Tensor x = upload(Shape{B, K}, randn(B * K, 10 + step));
      const auto [xz, xc] = ops::decode_gemv_conv(x, in_w, {}, {conv_w, conv_b, conv1});
      const Tensor y = ops::mamba_ssm_step(xc, ops::decode_gemv(xc, x_w), dt_w, dt_b, A, D, xz, h1);
      auto xs = ops::split_last(xz, {E, E});
      const Tensor xc2 = ops::silu(ops::causal_conv1d_step(xs[0], conv_w, conv_b, conv2));
      auto parts = ops::split_last(ops::matmul(xc2, x_w, false, true), {R, N, N});
      const Tensor delta = ops::matmul(parts[0], dt_w, false, true);
      const Tensor y2 = ops::selective_scan_step(xc2, delta, A, parts[1], parts[2], D, xs[1], dt_b, h2);
      const std::string at = std::string(to_string(mapping)) + " step " + std::to_string(step);
      expect_close(xc.to_host(), to_f64(xc2.to_host()), 1e-5, 1e-6, at + ": xc");
      expect_close(y.to_host(), to_f64(y2.to_host()), 1e-5, 1e-5, at + ": y");
      expect_close(h1.to_host(), to_f64(h2.to_host()), 1e-5, 1e-5, at + ": ssm state");
      expect_close(conv1.to_host(), to_f64(conv2.to_host()), 0, 0, at + ": conv state");
    }
  }
}

TEST(MambaDecode, TheCheckRejectsADeliberatelyBrokenVariant) {
  for (auto mapping : {magellano::ops::KernelMapping::cpu, magellano::ops::KernelMapping::gpu}) {
    ForcedMapping forced(mapping);
    // The skip term D·x left out.
    const auto no_skip = failures_with(ssm_case(3, 33, 16, 28), [](const std::vector<Tensor>& t) {
      const Tensor zero_d = upload(t[5].shape(), Vec(t[5].numel(), 0.0));
      const Tensor y = ops::mamba_ssm_step(t[0], t[1], t[2], t[3], t[4], zero_d, t[6], t[7]);
      return joined(y, t[7]);
    });
    EXPECT_FALSE(no_skip.empty()) << to_string(mapping);
    // dbc's B and C swapped (R 28, N 16: columns 28..43 <-> 44..59 of each row).
    const auto swapped = failures_with(ssm_case(3, 33, 16, 28), [](const std::vector<Tensor>& t) {
      Vec dbc = to_f64(t[1].to_host());
      const int64_t S = t[1].size(1);
      for (int64_t b = 0; b < t[1].size(0); ++b)
        for (int64_t j = 28; j < 44; ++j) std::swap(dbc[b * S + j], dbc[b * S + j + 16]);
      const Tensor y = ops::mamba_ssm_step(t[0], upload(t[1].shape(), dbc), t[2], t[3], t[4], t[5], t[6], t[7]);
      return joined(y, t[7]);
    });
    EXPECT_FALSE(swapped.empty()) << to_string(mapping);
  }
}

// Each mapping gives the same bits on every run (fixed summation orders, no atomics), and the two
// agree to fp32 rounding (E 45, N 21, R 35: every vector rest of the cpu kernel).
TEST(MambaDecode, EachMappingRepeatsItsBitsAndTheyAgree) {
  const int64_t B = 5, E = 45, N = 21, R = 35;
  Tensor xc = upload(Shape{B, E}, randn(B * E, 51)), dbc = upload(Shape{B, R + 2 * N}, randn(B * (R + 2 * N), 52));
  Tensor dt_w = upload(Shape{E, R}, uniform(E * R, 53, -0.3, 0.3)), dt_b = upload(Shape{E}, uniform(E, 54, -4, 0.5));
  Tensor A = upload(Shape{E, N}, uniform(E * N, 55, -3, -0.5)), D = upload(Shape{E}, randn(E, 56));
  Tensor xz = upload(Shape{B, 2 * E}, randn(B * 2 * E, 57));
  const Vec h0 = randn(B * E * N, 58);
  std::vector<float> y[2][2], h[2][2];
  int m = 0;
  for (auto mapping : {magellano::ops::KernelMapping::cpu, magellano::ops::KernelMapping::gpu}) {
    ForcedMapping forced(mapping);
    for (int run = 0; run < 2; ++run) {
      Tensor state = upload(Shape{B, E, N}, h0);
      y[m][run] = ops::mamba_ssm_step(xc, dbc, dt_w, dt_b, A, D, xz, state).to_host();
      h[m][run] = state.to_host();
    }
    EXPECT_EQ(y[m][0], y[m][1]) << to_string(mapping);
    EXPECT_EQ(h[m][0], h[m][1]) << to_string(mapping);
    ++m;
  }
  expect_close(y[0][0], to_f64(y[1][0]), 1e-5, 1e-6, "y: cpu against gpu");
  expect_close(h[0][0], to_f64(h[1][0]), 1e-5, 1e-6, "state: cpu against gpu");
}

TEST(MambaDecode, BadArgumentsAreOneClearError) {
  Tensor xz = upload(Shape{2, 8}, randn(16, 1));
  Tensor xc = upload(Shape{2, 4}, randn(8, 5)), A = upload(Shape{4, 3}, randn(12, 6));
  Tensor dt_w = upload(Shape{4, 2}, randn(8, 7)), e4 = upload(Shape{4}, randn(4, 8));
  Tensor h = upload(Shape{2, 4, 3}, randn(24, 9));
  expect_error([&] { ops::mamba_ssm_step(xc, upload(Shape{2, 7}, randn(14, 10)), dt_w, e4, A, e4, xz, h); },
               "shapes do not match");
  const Tensor x17 = upload(Shape{17, 4}, randn(68, 11)), xz17 = upload(Shape{17, 8}, randn(136, 12));
  expect_error([&] { ops::mamba_ssm_step(x17, upload(Shape{17, 8}, randn(136, 13)), dt_w, e4, A, e4, xz17,
                                         upload(Shape{17, 4, 3}, randn(204, 14))); },
               "takes 1 to 16 rows");
}
