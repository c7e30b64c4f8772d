// The selective scan of a Mamba block (mamba_ssm's selective_scan_ref with delta_bias,
// delta_softplus and the z gate), on the device, with autograd.
//
//   u, delta: (B, L, E)   A: (E, N)   Bm, Cm: (B, L, N)   D: (E)
//   z: (B, L, E) or undefined (no gate)   delta_bias: (E) or undefined
//   returns out: (B, L, E) = (C·h_t + D·u_t) · silu(z_t), with h_t = exp(Δ_t·A)·h_{t−1} + Δ_t·B_t·u_t
//   and Δ_t = softplus(delta_t + delta_bias) (no softplus when delta_softplus is false).
//
// Memory: the forward keeps only the state at the start of every `chunk` steps,
// (B, ceil(L/chunk), E, N); the backward recomputes each chunk's states from it, so saved
// activations stay O(B·L·E). Deterministic (fixed-order reductions, no atomics).
#pragma once
#include "magellano/autograd/tape.hpp"

namespace magellano::ops {

// How work-items map onto the scan. `channels`: one work-item walks VEC channels of one batch
// row with its N states in registers (explicit SIMD; the CPU mapping). `states`: one
// work-item per (b, e, n), sums over n and over channels through local memory (the GPU
// mapping before `lanes`; needs E divisible by 4). `lanes`: four states per work-item, a
// channel's states in N/4 neighbouring lanes, the backward's recomputed states in registers (the
// GPU mapping; needs N a multiple of 4 with N/4 a power of two, and E divisible by 32·4/N).
// `automatic` picks `lanes` on GPUs (else `states`) and `channels` elsewhere; the environment
// variable MAGELLANO_SCAN=channels|states|lanes overrides it. Results agree to rounding.
enum class ScanMapping { automatic, channels, states, lanes };

struct ScanOptions {
  bool delta_softplus = true;
  // Steps between saved states. The backward's scratch: (chunk, B·E, N) states per chunk in flight
  // (states mapping); the state at every 8th step, (B, L/8, N, E) (lanes); (B·E, chunk, 2, N) (channels).
  int64_t chunk = 64;
  ScanMapping mapping = ScanMapping::automatic;
};

// h_last (optional): receives the state after the last step, (B, E, N), as step-by-step
// decoding would leave it.
Tensor selective_scan(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                      const Tensor& Cm, const Tensor& D, const Tensor& z,
                      const Tensor& delta_bias, const ScanOptions& options = {},
                      Tensor* h_last = nullptr);

// One decoding step, no autograd: u_t, delta_t, z_t: (B, E); Bt, Ct: (B, N); h: (B, E, N)
// updated in place. Returns out_t: (B, E).
Tensor selective_scan_step(const Tensor& u_t, const Tensor& delta_t, const Tensor& A,
                           const Tensor& Bt, const Tensor& Ct, const Tensor& D, const Tensor& z_t,
                           const Tensor& delta_bias, const Tensor& h, bool delta_softplus = true);

}  // namespace magellano::ops
