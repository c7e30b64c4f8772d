// A linear layer over a frozen NF4 weight, with autograd for the input only.
//
//   nf4_linear(x, w) = x · dequant(W)ᵀ        x: (..., in) f32, W: NF4 (out, in) -> (..., out)
//   backward: dx = dy · dequant(W)            (W's gradient is never formed)
//
// The weight is dequantized into a reusable fp32 scratch buffer (one per context, grown to the
// largest weight seen, tracked as scratch memory) and multiplied with CLBlast; the backward
// dequantizes again (nothing (out, in)-sized is kept between forward and backward).
#pragma once
#include "magellano/autograd/tape.hpp"
#include "magellano/quant/nf4.hpp"

namespace magellano::ops {

Tensor nf4_linear(const Tensor& x, const quant::NF4Weight& w);

// The per-context fp32 scratch of at least n elements, as a (rows, cols) view with
// rows * cols == n. Valid until the next call on the same context (everything is in queue
// order, so a kernel enqueued before the next call may still read it).
Tensor nf4_scratch(Context& ctx, int64_t rows, int64_t cols);
// Bytes held by ctx's scratch (0 when never used). The scratch holds a reference to its context:
// release_nf4_scratch frees it (call it before dropping a context that should be destroyed).
uint64_t nf4_scratch_bytes(Context& ctx);
void release_nf4_scratch(Context& ctx);

}  // namespace magellano::ops
