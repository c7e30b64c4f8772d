// A Mixture-of-Experts block for a few decoding rows, no autograd and no host synchronisation
// (cl/moe_decode.cl): the router writes the expert ids and weights to device buffers and the
// expert kernels read them there. Three launches per block.
//
//   x: (T, D) f32 the block's input (before its RMSNorm), 1 <= T
//   norm: (D) the block's RMSNorm weight, eps its epsilon;  gate: (X, D) the router, X <= 64
//   w1, w3: (X, F, D) the experts' stacked w1 / w3 weights (w3 undefined for GELU experts)
//   w2: (X, D, F) the stacked w2 weights
//   extra: (T, D) or undefined, added to the routed sum (the shared expert's output)
// moe_decode_route: xn = rms_norm(x, norm, eps) (T, D), and the routing as nn::MoE's (MoERouter, ties
//   to the lower expert index): idx (T, K) i32 in descending order of score, weights (T, K). One launch.
// moe_decode_experts: returns (T, D) = x + scale · (Σ_k weights[t, k] · expert_{idx[t, k]}(xn[t])
//   [+ extra[t]]), k in order. Two launches (w1 / w3 with the activation, then w2 with the sum).
#pragma once
#include "magellano/tensor/tensor.hpp"

namespace magellano::ops {

enum class DecodeRouter { softmax_topk_renorm, softmax_topk_raw, topk_softmax };

struct MoEDecodeWeights {
  Tensor gate;        // (X, D)
  Tensor w1, w3, w2;  // (X, F, D), (X, F, D) or undefined, (X, D, F)
};

struct DecodeRouting {
  Tensor xn, idx, weights;  // (T, D), (T, K) i32, (T, K)
};

DecodeRouting moe_decode_route(const Tensor& x, const Tensor& norm, float eps, const Tensor& gate, int64_t top_k,
                               DecodeRouter router);

Tensor moe_decode_experts(const Tensor& x, const DecodeRouting& routing, const MoEDecodeWeights& w,
                          float scale = 1.0f, const Tensor& extra = Tensor());

}  // namespace magellano::ops
