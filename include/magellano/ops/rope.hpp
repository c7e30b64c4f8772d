// Rotary position embedding (RoPE), NeoX pairing, on the device, with autograd.
//
//   x: (B, L, heads, d), d even      y: (B, L, heads, d)
// For row t (position pos = start + t) and i < d/2, with inv_freq_i = theta^(-2i/d):
//   angle = pos · inv_freq_i
//   y[i]       = x[i] cos(angle) - x[i + d/2] sin(angle)
//   y[i + d/2] = x[i + d/2] cos(angle) + x[i] sin(angle)
// (the pairing of GPT-NeoX, Llama and Hugging Face's rotate_half). The backward is the inverse
// rotation (angle -> -angle).
//
// Accuracy: inv_freq is computed in double on the host and passed as a small table of turns per
// position (inv_freq / 2π) split into two floats (hi + lo). The kernel forms pos · hi exactly as a
// float pair (fma), drops whole turns exactly, adds pos · lo, and evaluates sinpi / cospi of the
// reduced angle, so the angle's error stays ~2e-7 rad at any position below 2^24. A plain fp32
// angle, float(pos) · float(inv_freq), is off by up to pos · 2^-24 rad from the rounding of
// inv_freq alone (~2e-3 rad at position 32,768); tests/ops/test_rope.cpp measures both against
// float64 at position 32,768 with theta 1e6. Positions must be below 2^24. (Hugging Face computes
// the angle in fp32, so at long positions it differs from this, and from float64, by that much.)
#pragma once
#include <cstdint>

#include "magellano/autograd/tape.hpp"

namespace magellano::ops {

struct RopeOptions {
  double theta = 10000.0;
  int64_t start = 0;  // position of row 0 (decoding: the number of tokens already in the cache)
};

Tensor rope(const Tensor& x, const RopeOptions& options = {});

// Decoding: each sequence b of x (B, T, heads, d) starts at its own position first[b] ((B) i32 on
// the device; a negative entry, a finished row, counts as 0): row t of sequence b is rotated to
// position first[b] + t. No autograd. Positions must be below 2^24 (not checked: on the device).
Tensor rope_at(const Tensor& x, const Tensor& first, double theta);

// GLM's 2D positions (blank infilling, train.infill_positions = glm2d): each token has a
// position id p and a block id q; each head's first half [0, d/2) is rotated by p and its second
// half [d/2, d) by q, each half as rope() above with head width d/2 (pairs i, i + d/4 within the
// half; inv_freq_i = theta^(-2i/(d/2)), i < d/4), as GLM / ChatGLM do. d must be a multiple of 4.
//   x: (B, L, heads, d); ids: (B, L, 2) i32 (p, q), each in [0, 2^24) (not checked: on the device).
// With autograd (the backward rotates back by the same ids).
Tensor rope_2d(const Tensor& x, const Tensor& ids, double theta);

// The same rotation with ids (first[b] + t, 0) for row t of sequence b: ordinary text (block id 0,
// so second halves stay as they are) from position first[b] ((B) i32 on the device; a negative
// entry, a finished row, counts as 0). With autograd (training with no ids given) and for decoding.
Tensor rope_2d_at(const Tensor& x, const Tensor& first, double theta);

}  // namespace magellano::ops
