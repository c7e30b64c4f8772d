// ops::gemm on the matrix engine (cl/gemm_mma.cl, ops/matrix_engine.hpp) with tf32 and bf16
// operands: every transpose combination, odd sizes crossing the 128 x 128 tiles and the K steps,
// batches with a batched or a shared B, alpha / beta, NaN-poisoned outputs when beta == 0, views
// at an offset, aligned interiors (float4 loads) and K split across work-groups.
// On every device the kernel's emulated forms run, direct and packed (the mma instruction replaced
// by FMAs on the rounded operands: the packing, tiling, staging, rounding, edges and split K are the
// hardware kernel's);
// on a device whose matrix engine passed its probe (NVIDIA, compute capability >= 8.0: the GPU
// machine) the same cases run the mma instructions themselves.
// Tolerance (support/gemm_check.hpp): the float64 product of the operands rounded as the kernel
// rounds them (bf16 to nearest even, tf32 to nearest with ties away), within the fp32
// accumulation bound (K + 2) 2^-24 sum |a b|: bf16 and tf32 products are exact in fp32, so only the
// summation rounds. The unrounded fp32 product is off by up to 2^-8 sum |a b| (bf16) or 2^-10
// (tf32), far outside that bound: the test rejects a kernel that skips the rounding or rounds to
// the other type (checked below, with a deliberately wrong element too).
#include <cmath>
#include <limits>

#include <gtest/gtest-spi.h>

#include "gemm_check.hpp"
#include "harness.hpp"
#include "magellano/ops/gemm_tuning.hpp"
#include "magellano/ops/matmul.hpp"
#include "magellano/ops/matrix_engine.hpp"

using namespace mgtest;
namespace ops = magellano::ops;
using magellano::ComputeDType;

namespace {

// Sets the test context's compute dtype (and emulation) for one test, then restores fp32.
struct ComputeGuard {
  ComputeGuard(ComputeDType d, bool emulate, bool packed = false) {
    test_ctx().set_compute_dtype(d);
    ops::force_mma_emulation(emulate, packed);
  }
  ~ComputeGuard() {
    test_ctx().set_compute_dtype(ComputeDType::fp32);
    ops::force_mma_emulation(false);
    ops::force_skinny_gemm(std::nullopt);
  }
};

void check_all(ComputeDType d, uint64_t seed) {
  ops::force_skinny_gemm(false);  // every product through the matrix-engine kernel
  check_gemm_sizes(seed, true, d);
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      check_gemm({1, 256, 128, 96, ta, tb, false, 1.0f, 0.0f, 4}, seed += 3, d);  // aligned interiors
      check_gemm({3, 128, 256, 48, ta, tb, !ta, 1.0f, -1.0f, 4}, seed += 3, d);
      check_gemm({1, 200, 196, 40, ta, tb, false, 1.0f, 0.5f, 4}, seed += 3, d);
      check_gemm({2, 130, 260, 19, ta, tb, false, 0.5f, 2.0f}, seed += 3, d);
      // K split across work-groups (one or two tiles, a long K), odd and aligned.
      check_gemm({1, 100, 60, 1400, ta, tb, false, -0.5f, 0.0f}, seed += 3, d);
      check_gemm({1, 256, 128, 2048, ta, tb, false, 1.0f, 1.0f, 4}, seed += 3, d);
    }
}

int failures_of(const GemmCase& c, uint64_t seed, ComputeDType rounding, const GemmFn& product) {
  testing::TestPartResultArray results;
  {
    testing::ScopedFakeTestPartResultReporter reporter(
        testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &results);
    check_gemm(c, seed, rounding, product);
  }
  return results.size();
}

}  // namespace

TEST(GemmMma, EmulatedBf16) {
  ComputeGuard g(ComputeDType::bf16, true);
  check_all(ComputeDType::bf16, 3000);
}

TEST(GemmMma, EmulatedTf32) {
  ComputeGuard g(ComputeDType::tf32, true);
  check_all(ComputeDType::tf32, 4000);
}

TEST(GemmMma, EmulatedPackedBf16) {
  ComputeGuard g(ComputeDType::bf16, true, true);
  check_all(ComputeDType::bf16, 3500);
}

TEST(GemmMma, EmulatedPackedTf32) {
  ComputeGuard g(ComputeDType::tf32, true, true);
  check_all(ComputeDType::tf32, 4500);
}

TEST(GemmMma, HardwareBf16AndTf32) {
  const ops::MatrixEngine& e = ops::matrix_engine(test_ctx());
  if (!e.bf16 && !e.tf32) GTEST_SKIP() << "no matrix engine: " << e.description;
  for (ComputeDType d : {ComputeDType::bf16, ComputeDType::tf32}) {
    if (!(d == ComputeDType::bf16 ? e.bf16 : e.tf32)) {
      ADD_FAILURE() << ops::to_string(d) << " failed its probe: " << e.description;
      continue;
    }
    SCOPED_TRACE(ops::to_string(d));
    ComputeGuard g(d, false);
    EXPECT_EQ(ops::mma_path(test_ctx()), ops::MmaPath::hardware);
    check_all(d, d == ComputeDType::bf16 ? 5000 : 6000);
  }
}

// The check fails products that skip the rounding, round to the other type, or are wrong in one
// element by about a bf16 rounding of one term. (The products run through the tile kernel: on a
// GPU this shape would otherwise take the skinny kernel, which multiplies in fp32 unrounded.)
TEST(GemmMma, TheCheckRejectsDeliberatelyBrokenProducts) {
  const GemmCase c{1, 40, 24, 70, false, true, false, 1.0f, 0.0f};
  const GemmFn fp32 = [](auto& a, bool ta, auto& b, bool tb, auto& out, float alpha, float beta) {
    ComputeGuard g(ComputeDType::fp32, false);
    ops::gemm(a, ta, b, tb, out, alpha, beta);
  };
  EXPECT_GT(failures_of(c, 70, ComputeDType::bf16, fp32), 0) << "an unrounded product passed as bf16";
  EXPECT_GT(failures_of(c, 71, ComputeDType::tf32, fp32), 0) << "an unrounded product passed as tf32";
  const GemmFn tf32 = [](auto& a, bool ta, auto& b, bool tb, auto& out, float alpha, float beta) {
    ComputeGuard g(ComputeDType::tf32, true);
    ops::force_skinny_gemm(false);
    ops::gemm(a, ta, b, tb, out, alpha, beta);
  };
  EXPECT_GT(failures_of(c, 72, ComputeDType::bf16, tf32), 0) << "a tf32 product passed as bf16";
  const GemmFn one_off = [](auto& a, bool ta, auto& b, bool tb, auto& out, float alpha, float beta) {
    ComputeGuard g(ComputeDType::bf16, true);
    ops::force_skinny_gemm(false);
    ops::gemm(a, ta, b, tb, out, alpha, beta);
    std::vector<float> h = out.to_host();
    h[7 * 24 + 5] *= 1.0f + 1.0f / 512;  // one element off by 2^-9 of itself
    Tensor(out).copy_from_host(h.data(), h.size() * sizeof(float));
  };
  EXPECT_GT(failures_of(c, 73, ComputeDType::bf16, one_off), 0) << "a wrong element passed";
  // And the correct product passes the same check.
  const GemmFn bf16 = [](auto& a, bool ta, auto& b, bool tb, auto& out, float alpha, float beta) {
    ComputeGuard g(ComputeDType::bf16, true);
    ops::force_skinny_gemm(false);
    ops::gemm(a, ta, b, tb, out, alpha, beta);
  };
  EXPECT_EQ(failures_of(c, 74, ComputeDType::bf16, bf16), 0);
}

// Without a matrix engine a tf32 / bf16 compute dtype changes nothing: the products are the fp32
// ones, bit for bit, and the description says why.
TEST(GemmMma, NoEngineMeansFp32) {
  Context& ctx = test_ctx();
  if (ops::matrix_engine(ctx).bf16) GTEST_SKIP() << "this device has a matrix engine";
  const Tensor a = upload(Shape{67, 45}, randn(67 * 45, 80)), b = upload(Shape{45, 33}, randn(45 * 33, 81));
  const std::vector<float> want = ops::matmul(a, b).to_host();
  for (ComputeDType d : {ComputeDType::bf16, ComputeDType::tf32}) {
    ComputeGuard g(d, false);
    EXPECT_EQ(ops::mma_path(ctx), ops::MmaPath::none);
    EXPECT_EQ(ops::matmul(a, b).to_host(), want) << ops::to_string(d);
    const std::string why = ops::describe_compute_path(ctx);
    EXPECT_EQ(why.rfind("fp32 (" + std::string(ops::to_string(d)) + " asked for; matrix engine: ", 0), 0u) << why;
  }
  EXPECT_FALSE(ops::matrix_engine(ctx).description.empty());
}

// round_operand: bf16 to nearest even, tf32 to nearest with ties away from zero; inf and NaN kept.
TEST(GemmMma, OperandRounding) {
  const float one = 1.0f, inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(ops::round_operand(one + std::ldexp(1.0f, -8), ComputeDType::bf16), one);  // tie: even
  EXPECT_EQ(ops::round_operand(one + 3 * std::ldexp(1.0f, -8), ComputeDType::bf16), one + std::ldexp(1.0f, -6));
  EXPECT_EQ(ops::round_operand(one + std::ldexp(1.0f, -9), ComputeDType::bf16), one);
  EXPECT_EQ(ops::round_operand(-one - std::ldexp(1.0f, -11), ComputeDType::tf32), -one - std::ldexp(1.0f, -10));  // tie: away
  EXPECT_EQ(ops::round_operand(one + std::ldexp(1.0f, -12), ComputeDType::tf32), one);
  EXPECT_EQ(ops::round_operand(inf, ComputeDType::bf16), inf);
  EXPECT_EQ(ops::round_operand(-inf, ComputeDType::tf32), -inf);
  EXPECT_TRUE(std::isnan(ops::round_operand(std::nanf(""), ComputeDType::bf16)));
  EXPECT_EQ(ops::round_operand(0.3f, ComputeDType::fp32), 0.3f);
  EXPECT_EQ(ops::compute_dtype_from_string("bf16"), ComputeDType::bf16);
  EXPECT_THROW(ops::compute_dtype_from_string("fp8"), magellano::Error);
}
