// A linear layer over a frozen NF4 weight, with autograd for the input only.
//
//   nf4_linear(x, w) = x · dequant(W)ᵀ        x: (..., in) f32, W: NF4 (out, in) -> (..., out)
//   backward: dx = dy · dequant(W)            (W's gradient is never formed)
//
// Two forward paths (results differ only in fp32 summation order):
//   dequant_gemm  W is dequantized into a reusable fp32 scratch buffer (one per context, grown to
//                 the largest weight seen, tracked as scratch memory), then ops::gemm;
//   fused         one kernel dequantizes W on the fly while multiplying (cl/nf4.cl,
//                 nf4_linear_small): reads 0.5 bytes per weight instead of writing and reading
//                 4 + 4; only for x with at most kNF4FusedMaxRows rows.
// automatic picks fused for at most kNF4FusedAutoRows rows (decoding one sequence), else
// dequant_gemm. `magellano bench nf4`, 8192 x 2048: one row fused 0.115 ms vs 0.306 on the H100,
// 18 vs 28 ms on PoCL; eight rows fused 0.618 vs 0.372 ms and 73 vs 34 ms. The backward always
// dequantizes into the scratch and multiplies (nothing (out, in)-sized is kept between forward
// and backward).
#pragma once
#include "magellano/autograd/tape.hpp"
#include "magellano/ops/nf4.hpp"

namespace magellano::ops {

enum class NF4Path { automatic, dequant_gemm, fused };
constexpr int64_t kNF4FusedMaxRows = 8;
constexpr int64_t kNF4FusedAutoRows = 1;

Tensor nf4_linear(const Tensor& x, const NF4Weight& w, NF4Path path = NF4Path::automatic);

// The per-context fp32 scratch of at least n elements, as a (rows, cols) view with
// rows * cols == n. Valid until the next call on the same context (everything is in queue
// order, so a kernel enqueued before the next call may still read it).
Tensor nf4_scratch(Context& ctx, int64_t rows, int64_t cols);
// Bytes held by ctx's scratch (0 when never used). The scratch holds a reference to its context:
// release_nf4_scratch frees it (call it before dropping a context that should be destroyed).
uint64_t nf4_scratch_bytes(Context& ctx);
void release_nf4_scratch(Context& ctx);

}  // namespace magellano::ops
