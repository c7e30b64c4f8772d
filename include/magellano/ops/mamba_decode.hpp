// One decoding step of a Mamba1 mixer between its conv and out_proj, no autograd
// (cl/mamba_decode.cl). With ops::decode_gemv_conv for in_proj (the block's RMSNorm and the conv
// step + SiLU fused) and ops::decode_gemv for out_proj (the residual fused), a Mamba block steps
// in three launches on GPUs (four on CPUs, where x_proj is a launch of its own).
//
//   xz: (B, 2E) in_proj's output (x = the first E columns, z = the last E)
//   mamba_ssm_step: xc (B, E) with 1 <= B <= kDecodeGemvRows, x_proj_weight (R + 2N, E): dbc =
//     xc · x_proj_weightᵀ = [dt | B | C] (B, R + 2N), dt_weight (E, R),
//     dt_bias (E), A (E, N) = −exp(A_log) (a constant of the decode: nn::MambaState::A), D (E),
//     h: (B, E, N) updated in place; returns y: (B, E) = selective_scan_step(xc, dt·dt_weightᵀ, A, B,
//     C, D, z, dt_bias, h) with softplus: x_proj (on GPUs), dt_proj, the softplus, the state update,
//     D's skip and the SiLU(z) gate in one kernel.
#pragma once
#include "magellano/tensor/tensor.hpp"

namespace magellano::ops {

Tensor mamba_ssm_step(const Tensor& xc, const Tensor& x_proj_weight, const Tensor& dt_weight, const Tensor& dt_bias,
                      const Tensor& A, const Tensor& D, const Tensor& xz, const Tensor& h);

}  // namespace magellano::ops
