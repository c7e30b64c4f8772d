// ops::gemm against float64 for the GEMM tests (tests/ops/test_gemm_paths.cpp, test_gemm_mma.cpp).
//
// Tolerance: each element is a K-term fp32 dot product, then alpha * s + beta * c. Whatever
// the summation order, its error is at most (K + 2) * u * (|alpha| * sum_k |a_ik b_kj| +
// |beta * c_ij|) with u = 2^-24 (the standard bound for recursive or blocked summation; FMAs
// only reduce it). The check uses that bound per element, plus 1e-30 for exact zeros: it is
// loose enough never to fail a correct kernel and still catches any wrong index, missed
// edge element or stale value, which are off by O(|a| |b|).
// With a rounding (tf32, bf16: the matrix engine's operands), the reference multiplies the
// operands rounded as ops::round_operand rounds them: a product of two bf16 or two tf32 values is
// exact in fp32 (8 + 8 and 11 + 11 significant bits), so the same bound holds.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "magellano/runtime/compute_dtype.hpp"
#include "magellano/tensor/tensor.hpp"

namespace mgtest {

struct GemmCase {
  int64_t batch, m, n, k;
  bool ta, tb, shared_b;
  float alpha, beta;
  int64_t pad = 5;  // elements before each operand in its buffer (4: 16-byte aligned)
};

std::string name_of(const GemmCase& c);

// The product under test: ops::gemm by default.
using GemmFn = std::function<void(const magellano::Tensor& a, bool ta, const magellano::Tensor& b, bool tb,
                                  const magellano::Tensor& c, float alpha, float beta)>;

// Runs c = alpha op(a) op(b) + beta c on the device (operands at an offset inside larger buffers,
// as narrow_rows views are in the MoE; C NaN-poisoned when beta == 0) and checks it against
// float64 of the operands rounded to `rounding`. Reports the first wrong element as a failure.
void check_gemm(const GemmCase& c, uint64_t seed,
                magellano::ComputeDType rounding = magellano::ComputeDType::fp32, const GemmFn& product = {});

// Sizes around the tile edges of every GEMM kernel.
extern const std::vector<std::array<int64_t, 3>> kGemmSizes;

// Every size of kGemmSizes in every transpose combination, three (alpha, beta) pairs, and with
// batches (batched and shared B) when with_batches. A single row of a single matrix runs as a GEMV
// in fp32 whatever the compute dtype: it is checked against the unrounded product.
void check_gemm_sizes(uint64_t seed, bool with_batches,
                      magellano::ComputeDType rounding = magellano::ComputeDType::fp32);

}  // namespace mgtest
