// Dropout (inverted): out = x · keep / (1 − p), keep ~ Bernoulli(1 − p) per element, with autograd.
// The mask is a pure function of (seed, element index), computed by a counter-based hash
// (splitmix64) on the device and regenerated in the backward, so nothing is stored and a
// recompute with the same seed (gradient checkpointing) drops exactly the same elements.
//   x: any shape f32;  p in [0, 1);  p == 0 returns x itself.
#pragma once
#include <cstdint>

#include "magellano/autograd/tape.hpp"

namespace magellano::ops {

Tensor dropout(const Tensor& x, float p, uint64_t seed);

// The keep decision of element i, as the kernel makes it (for tests and references).
bool dropout_keeps(uint64_t seed, uint64_t i, float p);

}  // namespace magellano::ops
