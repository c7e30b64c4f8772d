// Grouped expert MLPs: the expert computation of a dropless Mixture-of-Experts layer, with
// autograd. Rows are routed (token, slot) pairs already sorted by expert, so expert e owns the
// contiguous rows [offsets[e], offsets[e + 1]) and runs its GEMMs on that slice (zero-copy
// narrow_rows views; CLBlast honours the offsets). One GEMM per expert and matrix.
//
//   xs:      (R, D) f32, rows sorted by expert
//   offsets: X + 1 host integers, 0 = offsets[0] <= ... <= offsets[X] = R
//   w1, w3:  X tensors (F, D) (PyTorch Linear layout [out, in]); w3 empty for GELU
//   w2:      X tensors (D, F)
//            all f32, or all f16 (fp16 storage: each expert's weight is widened into an fp32
//            scratch right before its GEMM, and again in the backward; an fp16 weight's
//            gradient is computed in fp32 and added into its fp16 gradient, rounded once)
//   returns  (R, D): y[r] = w2_e · act(r)   with, for r in expert e's rows,
//            act = silu(w1_e · x_r) ⊙ (w3_e · x_r)   (SwiGLU)   or   gelu(w1_e · x_r)  (GELU, erf)
//
// Saved for the backward: xs and the pre-activations h1 (and h3), (R, F) each; the activation is
// recomputed. Backward gives dxs and every weight's gradient; an expert with no rows gets exact
// zero weight gradients. Deterministic (GEMMs and pointwise kernels only).
#pragma once
#include <cstdint>
#include <vector>

#include "magellano/tensor/tensor.hpp"

namespace magellano::ops {

enum class ExpertActivation { swiglu, gelu };

Tensor expert_mlp(const Tensor& xs, const std::vector<int64_t>& offsets,
                  const std::vector<Tensor>& w1, const std::vector<Tensor>& w2,
                  const std::vector<Tensor>& w3, ExpertActivation act);

}  // namespace magellano::ops
