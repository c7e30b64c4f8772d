// Mixture-of-Experts routing ops: top-k selection and its mixing weights, the routing plan
// (tokens sorted by expert, per-expert offsets), a per-row scale, and the two auxiliary router
// losses. All deterministic (fixed-order sums, stable sort, no atomics), f32 with autograd where
// stated. Names: N tokens, X experts, K top-k, D width, R = N * K routed (token, slot) rows.
#pragma once
#include <cstdint>

#include "magellano/ops/index.hpp"
#include "magellano/tensor/tensor.hpp"

namespace magellano::ops {

// The K largest entries of each row of `scores`, in decreasing order (ties: lower expert first),
// and the mixing weights made from them:
//   scores:  (N, X) f32, 1 <= K <= X       idx: (N, K) i32, no gradient      weights: (N, K) f32
// TopKWeights says how the K selected scores s_k become weights w_k:
//   renorm   w = s / sum_k s_k   (scores are probabilities; Mixtral's softmax-then-top-k with its
//            renormalisation). Backward: ds[idx_k] = (dw_k - sum_j dw_j w_j) / S, S = sum_k s_k;
//            for K = 1 the weight is 1 and its gradient 0.
//   raw      w = s               (probabilities kept as they are: Jamba, no renormalisation).
//            Backward: ds[idx_k] = dw_k.
//   softmax  w = softmax over the K selected s (scores are router logits: Granite's
//            top-k-then-softmax; max-subtracted, fp32). Backward: ds[idx_k] = w_k (dw_k - sum_j dw_j w_j).
// Unselected entries get a zero gradient in every mode. Mathematically, softmax on logits gives
// the same weights as renorm on softmax(logits); the two differ in rounding, and in selection
// where probabilities round to equal (or underflow) while the logits still differ.
enum class TopKWeights { renorm, raw, softmax };
struct TopK {
  Tensor idx;
  Tensor weights;
};
TopK topk(const Tensor& scores, int64_t k, TopKWeights weights);
inline TopK topk_renorm(const Tensor& probs, int64_t k) { return topk(probs, k, TopKWeights::renorm); }

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
