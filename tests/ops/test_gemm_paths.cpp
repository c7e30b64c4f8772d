// ops::gemm through each implementation (ops/gemm_tuning.hpp): cl/gemm_cpu.cl with several
// (MR, MBLOCK, KC) settings, cl/gemm_gpu.cl with each (BK, DB), cl/gemm_skinny.cl, and
// CLBlast; every transpose combination, odd sizes, batches with a batched or a shared B,
// alpha / beta, NaN-poisoned outputs when beta == 0, and views at an offset into a larger
// buffer.
//
// Tolerance: each element is a K-term fp32 dot product, then alpha * s + beta * c. Whatever
// the summation order, its error is at most (K + 2) * u * (|alpha| * sum_k |a_ik b_kj| +
// |beta * c_ij|) with u = 2^-24 (the standard bound for recursive or blocked summation; FMAs
// only reduce it). The test uses that bound per element, plus 1e-30 for exact zeros: it is
// loose enough never to fail a correct kernel and still catches any wrong index, missed
// edge element or stale value, which are off by O(|a| |b|).
#include <array>
#include <cmath>
#include <limits>

#include "harness.hpp"
#include "reference.hpp"
#include "magellano/ops/gemm_tuning.hpp"
#include "magellano/ops/matmul.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

namespace {

struct Case {
  int64_t batch, m, n, k;
  bool ta, tb, shared_b;
  float alpha, beta;
  int64_t pad = 5;  // elements before each operand in its buffer (4: 16-byte aligned)
};

std::string name_of(const Case& c) {
  return "b" + std::to_string(c.batch) + " m" + std::to_string(c.m) + " n" + std::to_string(c.n) +
         " k" + std::to_string(c.k) + (c.ta ? " ta" : "") + (c.tb ? " tb" : "") +
         (c.shared_b ? " shared" : "") + " alpha " + std::to_string(c.alpha) + " beta " +
         std::to_string(c.beta);
}

// Runs c = alpha op(a) op(b) + beta c on the device and checks it against float64. The
// operands live at an offset inside larger buffers (as narrow_rows views do in the MoE).
void check_gemm(const Case& c, uint64_t seed) {
  Context& ctx = test_ctx();
  const int64_t ar = c.ta ? c.k : c.m, ac = c.ta ? c.m : c.k;
  const int64_t br = c.tb ? c.n : c.k, bc = c.tb ? c.k : c.n;
  const int64_t bb = c.shared_b ? 1 : c.batch;
  const Vec a = randn(c.batch * ar * ac, seed), b = randn(bb * br * bc, seed + 1);
  const Vec c0 = randn(c.batch * c.m * c.n, seed + 2);
  const int64_t pad = c.pad;  // leading elements before each operand
  auto padded = [&](const Vec& v) {
    Vec p(pad, 0.0);
    p.insert(p.end(), v.begin(), v.end());
    return p;
  };
  auto view = [&](const Tensor& whole, int64_t n, const Shape& s) {
    return whole.narrow_rows(pad, pad + n).view(s);
  };
  Tensor ta_ = upload(Shape{pad + int64_t(a.size())}, padded(a));
  Tensor tb_ = upload(Shape{pad + int64_t(b.size())}, padded(b));
  Tensor tc_ = c.beta == 0.0f ? Tensor::empty(ctx, Shape{pad + int64_t(c0.size())})  // NaN poison
                              : upload(Shape{pad + int64_t(c0.size())}, padded(c0));
  const Tensor A = view(ta_, a.size(), c.batch == 1 ? Shape{ar, ac} : Shape{c.batch, ar, ac});
  const Tensor B = view(tb_, b.size(), bb == 1 ? Shape{br, bc} : Shape{bb, br, bc});
  const Tensor C = view(tc_, c0.size(), c.batch == 1 ? Shape{c.m, c.n} : Shape{c.batch, c.m, c.n});
  ops::gemm(A, c.ta, B, c.tb, C, c.alpha, c.beta);
  const std::vector<float> got = C.to_host();
  const double u = std::ldexp(1.0, -24);
  // The float64 product (ref::matmul), and the same of |a| and |b|: sum_k |a_ik b_kj|.
  const ref::MatmulDims dims{c.batch, c.m, c.n, c.k, c.ta, c.tb, c.shared_b};
  auto abs_of = [](Vec v) {
    for (auto& x : v) x = std::fabs(x);
    return v;
  };
  const Vec prod = ref::matmul(dims, a, b), mags = ref::matmul(dims, abs_of(a), abs_of(b));
  for (int64_t p = 0; p < c.batch; ++p)
    for (int64_t i = 0; i < c.m; ++i)
      for (int64_t j = 0; j < c.n; ++j) {
        const int64_t at = (p * c.m + i) * c.n + j;
        const double s = prod[at], mag = mags[at];
        const double cin = c.beta == 0.0f ? 0.0 : double(float(c0[at]));
        const double want = c.alpha * s + c.beta * cin;
        const double bound = (c.k + 2) * u * (std::fabs(c.alpha) * mag + std::fabs(c.beta * cin)) + 1e-30;
        const double err = std::fabs(double(got[at]) - want);
        if (!(err <= bound)) {
          ADD_FAILURE() << name_of(c) << ": element (" << p << ", " << i << ", " << j << ") is "
                        << got[at] << ", want " << want << " (bound " << bound << ")";
          return;
        }
      }
  // The padding in front of C is untouched.
  const std::vector<float> whole = tc_.to_host();
  for (int64_t i = 0; i < pad; ++i)
    if (c.beta != 0.0f) EXPECT_EQ(whole[i], 0.0f) << name_of(c) << ": wrote before C";
}

// Sizes around the tile edges (MR in 4..8, NR 16) and the M blocks.
const std::vector<std::array<int64_t, 3>> kSizes = {
    {1, 1, 1}, {7, 5, 3}, {63, 65, 17}, {65, 63, 64}, {257, 33, 129}, {16, 130, 1}};

void run_all(uint64_t seed, bool with_batches) {
  for (const auto& [m, n, k] : kSizes)
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        check_gemm({1, m, n, k, ta, tb, false, 1.0f, 0.0f}, seed += 3);
        check_gemm({1, m, n, k, ta, tb, false, -0.5f, 0.0f}, seed += 3);
        check_gemm({1, m, n, k, ta, tb, false, 1.5f, -0.75f}, seed += 3);
        if (with_batches) {
          check_gemm({3, m, n, k, ta, tb, false, 1.0f, 0.0f}, seed += 3);
          if (!ta) check_gemm({3, m, n, k, ta, tb, true, 0.5f, 1.0f}, seed += 3);
        }
      }
}

struct PathGuard {  // restores the device's own choice after a test
  ~PathGuard() {
    ops::force_gemm_path(std::nullopt);
    ops::force_cpu_gemm_params(std::nullopt);
    ops::force_gpu_gemm_params(std::nullopt);
    ops::force_skinny_gemm(std::nullopt);
  }
};

}  // namespace

TEST(GemmPaths, CpuKernelDefaultParameters) {
  PathGuard g;
  ops::force_gemm_path(ops::GemmPath::cpu_kernel);
  ops::force_cpu_gemm_params(ops::CpuGemmParams{});
  run_all(100, true);
}

// Small M blocks, K blocks and K chunks: several launches accumulate into C, and the last M
// block is partial.
TEST(GemmPaths, CpuKernelBlockedInMAndK) {
  PathGuard g;
  ops::force_gemm_path(ops::GemmPath::cpu_kernel);
  ops::force_cpu_gemm_params(ops::CpuGemmParams{4, 3, 16});
  run_all(200, true);
  ops::force_cpu_gemm_params(ops::CpuGemmParams{8, 1, 5});
  run_all(300, false);
  // Packed in K chunks of 16 (a 1 KiB scratch bound), each chunk in launches of 5.
  ops::force_cpu_gemm_params(ops::CpuGemmParams{6, 2, 5, 1024});
  run_all(400, true);
}

// cl/gemm_gpu.cl (128 x 128 tiles) with each (BK, DB): every size above is a partial tile;
// plus full interior tiles with aligned operands (the float4 loads and stores) over several K
// steps and a partial last step, whole tiles and K steps (the variant compiled without bounds
// checks), aligned partial tiles, unaligned rows, and K split.
TEST(GemmPaths, GpuKernel) {
  if (test_ctx().device().max_work_group_size < 256) GTEST_SKIP() << "needs work-groups of 256";
  PathGuard g;
  ops::force_gemm_path(ops::GemmPath::gpu_kernel);
  ops::force_skinny_gemm(false);
  uint64_t seed = 800;
  for (const ops::GpuGemmParams p : {ops::GpuGemmParams{16, true}, ops::GpuGemmParams{8, true},
                                     ops::GpuGemmParams{16, false}, ops::GpuGemmParams{8, false}}) {
    SCOPED_TRACE("BK " + std::to_string(p.bk) + " DB " + std::to_string(p.db));
    ops::force_gpu_gemm_params(p);
    run_all(seed += 1000, p.bk == 8 && p.db);  // batches with the default setting
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        check_gemm({1, 256, 128, 40, ta, tb, false, 1.0f, 0.0f, 4}, seed += 3);
        check_gemm({3, 128, 256, 16, ta, tb, !ta, 1.0f, -1.0f, 4}, seed += 3);
        check_gemm({1, 200, 196, 40, ta, tb, false, 1.0f, 0.5f, 4}, seed += 3);
        check_gemm({1, 256, 128, 48, ta, tb, false, 0.5f, 0.0f, 4}, seed += 3);  // no checks compiled
        check_gemm({2, 130, 260, 19, ta, tb, false, 0.5f, 2.0f}, seed += 3);
      }
  }
  // K split across work-groups and summed by a second pass (few tiles for the compute units,
  // a long K): an odd split, and aligned operands with a partial last split.
  // One or two tiles split at least twice on any device with a compute unit or more.
  ops::force_gpu_gemm_params(ops::GpuGemmParams{});
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      check_gemm({1, 100, 60, 1400, ta, tb, false, -0.5f, 0.0f}, seed += 3);
      check_gemm({1, 256, 128, 2200, ta, tb, false, 1.5f, 0.25f, 4}, seed += 3);
      check_gemm({1, 256, 128, 2048, ta, tb, false, 1.0f, 1.0f, 4}, seed += 3);  // aligned splits
    }
}

TEST(GemmPaths, Clblast) {
  PathGuard g;
  ops::force_gemm_path(ops::GemmPath::clblast);
  check_gemm({1, 65, 63, 64, false, true, false, 1.0f, 0.0f}, 400);
  check_gemm({1, 63, 65, 17, true, false, false, 1.5f, -0.75f}, 410);
  check_gemm({3, 7, 33, 129, false, false, true, 0.5f, 1.0f}, 420);
  check_gemm({3, 7, 33, 129, false, false, false, 1.0f, 0.0f}, 430);
}

// cl/gemm_skinny.cl (the GPUs' path for narrow outputs): narrow N, narrow M (run transposed),
// odd K, and K split across work-groups with a reduction pass (few output tiles, long K).
TEST(GemmPaths, SkinnyKernel) {
  PathGuard g;
  ops::force_gemm_path(ops::GemmPath::clblast);
  ops::force_skinny_gemm(true);
  const std::vector<std::array<int64_t, 3>> sizes = {
      {200, 16, 700}, {16, 300, 1000}, {130, 32, 7}, {77, 3, 33}, {100, 8, 2000}, {2, 3, 600}, {5, 1, 9}};
  uint64_t seed = 500;
  for (const auto& [m, n, k] : sizes)
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        check_gemm({1, m, n, k, ta, tb, false, 1.0f, 0.0f}, seed += 3);
        check_gemm({1, m, n, k, ta, tb, false, 1.5f, -0.75f}, seed += 3);
      }
  // Products that are not skinny, and batches, still go to CLBlast under the same setting.
  check_gemm({1, 65, 63, 64, false, true, false, 1.0f, 0.0f}, 600);
  check_gemm({1, 130, 90, 7, true, false, false, 1.0f, 0.0f}, 605);
  check_gemm({3, 7, 33, 129, false, false, true, 0.5f, 1.0f}, 610);
}

// An empty sum (K = 0) leaves beta * C, and zero when beta == 0 even over NaN poison.
TEST(GemmPaths, EmptyInnerDimension) {
  Context& ctx = test_ctx();
  for (auto path : {ops::GemmPath::cpu_kernel, ops::GemmPath::clblast}) {
    PathGuard g;
    ops::force_gemm_path(path);
    Tensor a = Tensor::empty(ctx, Shape{3, 0}), b = Tensor::empty(ctx, Shape{0, 4});
    Tensor c = Tensor::empty(ctx, Shape{3, 4});
    ops::gemm(a, false, b, false, c, 1.0f, 0.0f);
    for (float v : c.to_host()) EXPECT_EQ(v, 0.0f);
    Tensor d = Tensor::full(ctx, Shape{3, 4}, 2.0f);
    ops::gemm(a, false, b, false, d, 1.0f, 0.5f);
    for (float v : d.to_host()) EXPECT_EQ(v, 1.0f);
  }
}

TEST(GemmPaths, DeviceChoiceIsValid) {
  const ops::GemmChoice& c = ops::gemm_choice(test_ctx());
  EXPECT_FALSE(c.source.empty());
  EXPECT_GE(c.cpu.mr, 2);
  EXPECT_LE(c.cpu.mr, 8);
  if (c.source == "default")
    EXPECT_EQ(c.path, test_ctx().device().type == "cpu" ? ops::GemmPath::cpu_kernel
                                                         : ops::GemmPath::clblast);
}
