// One decoding step of a Mamba1 mixer between x_proj and out_proj, no autograd
// (cl/mamba_decode.cl). With ops::decode_gemv_conv for in_proj (the block's RMSNorm and the conv
// step + SiLU fused), ops::decode_gemv for x_proj and for out_proj (the residual fused), a Mamba
// block steps in four launches. (x_proj inside the step, every group computing its row's outputs
// again, was slower everywhere measured: 124 µs a call on the H100 at phase1's sizes, and 9.5
// against 1.6 ms a token on PoCL.)
//
//   xz: (B, 2E) in_proj's output (x = the first E columns, z = the last E)
//   mamba_ssm_step: xc (B, E) with 1 <= B <= kDecodeGemvRows, dbc (B, R + 2N) = x_proj's output
//     [dt | B | C], dt_weight (E, R), dt_bias (E), A (E, N) = −exp(A_log) (a constant of the
//     decode: nn::MambaState::A), D (E), h: (B, E, N) updated in place; returns y: (B, E) =
//     selective_scan_step(xc, dt·dt_weightᵀ, A, B, C, D, z, dt_bias, h) with softplus: dt_proj,
//     the softplus, the state update, D's skip and the SiLU(z) gate in one kernel (gpu mapping: a
//     work-item per channel; cpu: a work-item per 16 channels on float16 vectors, ops/mapping.hpp).
#pragma once
#include "magellano/tensor/tensor.hpp"

namespace magellano::ops {

Tensor mamba_ssm_step(const Tensor& xc, const Tensor& dbc, const Tensor& dt_weight, const Tensor& dt_bias,
                      const Tensor& A, const Tensor& D, const Tensor& xz, const Tensor& h);

}  // namespace magellano::ops
