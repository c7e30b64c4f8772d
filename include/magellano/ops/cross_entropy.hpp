// Fused log-softmax + cross-entropy with an ignore index, with autograd (for logits).
//
// cross_entropy(logits, targets, ignore_index)
//   logits:  (N, V) f32 row-major, or (..., V) with N = the product of the leading dimensions
//   targets: (N) i32, or logits' shape without its last dimension (e.g. (B, L) for (B, L, V))
//   out:     (1) f32 = mean over the counted rows r of logsumexp(logits[r]) - logits[r, t_r]
// A row is counted when its target t satisfies t != ignore_index and 0 <= t < V. Rows whose
// target is ignore_index, and rows whose target is out of range, add nothing to the loss or to
// the count and get a zero gradient: an out-of-range target is NOT an error on the device (that
// would need a read-back); call check_targets() where a host read is affordable (data loading,
// tests) to turn one into an Error. With no counted row the loss is 0 and the gradient 0.
// Backward: dlogits = (softmax(logits) - onehot(t)) * dloss / count on counted rows, 0 on others.
// The count and the mean are computed on the device (no host read-back) through fixed-order
// trees, and the per-row logsumexp is saved by the forward, so the backward reads the logits
// once and writes dlogits once.
#pragma once
#include <cstdint>

#include "magellano/autograd/tape.hpp"

namespace magellano::ops {

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int32_t ignore_index = -100);

// Reads targets back (blocking) and throws Error naming the first target that is neither
// ignore_index nor in [0, vocab). targets: any shape, i32.
void check_targets(const Tensor& targets, int64_t vocab, int32_t ignore_index = -100);

}  // namespace magellano::ops
