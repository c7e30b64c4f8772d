// Mixture-of-Experts routing ops: top-k selection with renormalised weights, the routing plan
// (tokens sorted by expert, per-expert offsets), a per-row scale, and the two auxiliary router
// losses. All deterministic (fixed-order sums, stable sort, no atomics), f32 with autograd where
// stated. Names: N tokens, X experts, K top-k, D width, R = N * K routed (token, slot) rows.
#pragma once
#include <cstdint>

#include "magellano/ops/index.hpp"
#include "magellano/tensor/tensor.hpp"

namespace magellano::ops {

// The K largest entries of each row of probs, in decreasing order (ties: lower expert first),
// and their values renormalised to sum to 1:
//   probs: (N, X) f32 (any positive values; a softmax output in MoE), 1 <= K <= X
//   idx:   (N, K) i32, no gradient        weights: (N, K) f32 = p_sel / sum(p_sel)
// Backward (weights -> probs): dp[n, idx[n,k]] = (dw[n,k] - sum_j dw[n,j] w[n,j]) / S_n with
// S_n = sum_k p[n, idx[n,k]]; unselected entries get 0. For K = 1 the weight is 1 and its
// gradient is 0.
struct TopK {
  Tensor idx;
  Tensor weights;
};
TopK topk_renorm(const Tensor& probs, int64_t k);

// The routing plan of flat expert ids (no autograd):
//   expert_ids: (R) i32 in [0, X), R = N * K, position n * K + k = slot k of token n
//   sorted:     sort_indices(expert_ids): routed rows grouped by expert, stable (by token)
//   token_of:   (R) i32, token_of[i] = sorted.perm[i] / K, the token of sorted row i
//   offsets:    (X + 1) i32 device tensor, expert e owns sorted rows [offsets[e], offsets[e+1])
//   counts:     (X) i32 device tensor, offsets[e + 1] - offsets[e]
struct RoutingPlan {
  SortedIndices sorted;
  Tensor token_of;
  Tensor offsets;
  Tensor counts;
};
RoutingPlan routing_plan(const Tensor& expert_ids, int64_t experts, int64_t k);

// y[r, :] = w[r] * x[r, :].   x: (R, D) f32; w: (R) or (R, 1) f32; returns (R, D).
// Backward: dx = w * dy, dw[r] = sum_d dy[r, d] * x[r, d] (in increasing d).
Tensor row_scale(const Tensor& x, const Tensor& w);

// Switch-Transformer load-balancing loss, (1) f32:  X * sum_e f_e * P_e, with
//   f_e = counts[e] / (N * K) (the fraction of routed pairs sent to e; no gradient) and
//   P_e = mean over tokens of probs[n, e].  probs: (N, X) f32; counts: (X) i32.
// Exactly 1.0 when routing is uniform (every P_e = 1 / X). Backward: dp[n, e] = X f_e / N.
Tensor balance_loss(const Tensor& probs, const Tensor& counts, int64_t k);

// Router z-loss, (1) f32: mean over tokens of logsumexp(logits[n, :])^2.  logits: (N, X) f32.
// Backward: dlogits[n, j] = (2 / N) * lse_n * softmax(logits[n])_j.
Tensor z_loss(const Tensor& logits);

}  // namespace magellano::ops
