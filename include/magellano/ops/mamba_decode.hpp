// One decoding step of a Mamba1 mixer between its projections, no autograd
// (cl/mamba_decode.cl). With ops::decode_gemv for in_proj (the block's RMSNorm fused), x_proj
// and out_proj (the residual fused), a Mamba block steps in five launches.
//
//   xz: (B, 2E) in_proj's output (x = the first E columns, z = the last E)
//   mamba_conv_step: conv_weight (E, W), conv_bias (E) or undefined, conv: (B, E, W-1) the conv
//     state, oldest first, updated in place; returns xc = silu(causal conv of x): (B, E), equal to
//     ops::silu(ops::causal_conv1d_step(x, conv_weight, conv_bias, conv)).
//   mamba_ssm_step: xc (B, E), dbc: (B, R + 2N) x_proj's output [dt | B | C], dt_weight (E, R),
//     dt_bias (E), A (E, N) = −exp(A_log) (a constant of the decode: nn::MambaState::A), D (E),
//     h: (B, E, N) updated in place; returns y: (B, E) = selective_scan_step(xc, dt·dt_weightᵀ, A, B,
//     C, D, z, dt_bias, h) with softplus: dt_proj, the softplus, the state update, D's skip and the SiLU(z)
//     gate in one kernel.
#pragma once
#include "magellano/tensor/tensor.hpp"

namespace magellano::ops {

Tensor mamba_conv_step(const Tensor& xz, const Tensor& conv_weight, const Tensor& conv_bias, const Tensor& conv);

Tensor mamba_ssm_step(const Tensor& xc, const Tensor& dbc, const Tensor& dt_weight, const Tensor& dt_bias,
                      const Tensor& A, const Tensor& D, const Tensor& xz, const Tensor& h);

}  // namespace magellano::ops
