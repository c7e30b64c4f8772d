// Matrix products (CLBlast or cl/gemm_cpu.cl per device: ops/gemm_tuning.hpp), with autograd.
//
// matmul(a, b, trans_a, trans_b, bias) = op(a) · op(b) (+ bias), row-major:
//   a: (..., M, K), or (..., K, M) when trans_a     b: (..., K, N), or (..., N, K) when trans_b
//   bias: (N), added to every row                   out: (..., M, N)
// Batching: a and b with equal leading dimensions (strided batched GEMM), or a batched and b
// 2-D (b shared; a's batch folds into M, needs !trans_a).
#pragma once
#include "magellano/autograd/tape.hpp"

namespace magellano::ops {

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false,
              const Tensor& bias = Tensor());

// x: (..., in), w: (out, in) as PyTorch stores Linear weights, bias: (out) -> (..., out).
// w f32: matmul; w f16 (fp16 storage): ops::half_linear, then the bias.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias = Tensor());

// Plain GEMM on tensors as matrices, no autograd: c = alpha * op(a) op(b) + beta * c, with a,
// b, c viewed as row-major (batch, rows, cols); batch = 1 for 2-D. beta == 0 never reads c.
void gemm(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, const Tensor& c,
          float alpha = 1.0f, float beta = 0.0f);

}  // namespace magellano::ops
