// Mamba2's gated RMSNorm (Hugging Face's MambaRMSNormGated, mamba_ssm's RMSNormGated with
// norm_before_gate = False), with autograd.
//
// gated_rms_norm(y, z, weight, groups, eps):
//   u   = y * silu(z)
//   out = u * rsqrt(mean(u^2 over each group of D / groups contiguous channels) + eps) * weight
//   y, z:   (..., D) f32, the same shape, up to 4-D; each row is normalised group by group
//   weight: (D) f32;  groups must divide D;  out: y's shape
// Backward gives dy, dz (..., D) and dweight (D), the latter summed over rows in a fixed order
// (chunks of rows, then the chunks in order): deterministic, no atomics.
#pragma once
#include "magellano/autograd/tape.hpp"

namespace magellano::ops {

Tensor gated_rms_norm(const Tensor& y, const Tensor& z, const Tensor& weight, int64_t groups,
                      float eps = 1e-5f);

}  // namespace magellano::ops
