// ops::gemm through each implementation (ops/gemm_tuning.hpp): cl/gemm_cpu.cl with several
// (MR, MBLOCK, KC) settings, cl/gemm_gpu.cl with each (BK, DB), cl/gemm_skinny.cl, and
// CLBlast; every transpose combination, odd sizes, batches with a batched or a shared B,
// alpha / beta, NaN-poisoned outputs when beta == 0, and views at an offset into a larger
// buffer.

// Tolerance: see support/gemm_check.hpp.
#include <array>
#include <cmath>
#include <limits>

#include "gemm_check.hpp"
#include "harness.hpp"
#include "reference.hpp"
#include "magellano/ops/gemm_tuning.hpp"
#include "magellano/ops/matmul.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

namespace {

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
  check_gemm_sizes(100, true);
}

// Small M blocks, K blocks and K chunks: several launches accumulate into C, and the last M
// block is partial.
TEST(GemmPaths, CpuKernelBlockedInMAndK) {
  PathGuard g;
  ops::force_gemm_path(ops::GemmPath::cpu_kernel);
  ops::force_cpu_gemm_params(ops::CpuGemmParams{4, 3, 16});
  check_gemm_sizes(200, true);
  ops::force_cpu_gemm_params(ops::CpuGemmParams{8, 1, 5});
  check_gemm_sizes(300, false);
  // Packed in K chunks of 16 (a 1 KiB scratch bound), each chunk in launches of 5.
  ops::force_cpu_gemm_params(ops::CpuGemmParams{6, 2, 5, 1024});
  check_gemm_sizes(400, true);
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
    check_gemm_sizes(seed += 1000, p.bk == 8 && p.db);  // batches with the default setting
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
