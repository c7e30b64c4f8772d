// Shape ops along the last dimensions (copies, with autograd).
#pragma once
#include <cstdint>
#include <vector>

#include "magellano/autograd/tape.hpp"

namespace magellano::ops {

// x: (..., D) f32; sizes: k non-negative widths summing to D. Returns k contiguous copies,
// piece i = x[..., o_i : o_i + sizes[i]] of shape (..., sizes[i]), o_i = sizes[0] + ... + sizes[i-1].
// Backward: each piece's gradient lands in its column range of dx; columns of pieces that
// received no gradient are 0 when dx is overwritten (and untouched when accumulated).
std::vector<Tensor> split_last(const Tensor& x, const std::vector<int64_t>& sizes);

// xs: k >= 1 f32 tensors (..., D_i) with equal leading dimensions. Returns (..., sum D_i),
// xs side by side along the last dimension. Backward: dxs[i] = dout[..., o_i : o_i + D_i].
Tensor concat_last(const std::vector<Tensor>& xs);

// x: (..., M, N) f32 with at least 2 dimensions. Returns (..., N, M), y[..., j, i] = x[..., i, j]
// (tiled through local memory). Backward: the transpose of dout.
Tensor transpose_last2(const Tensor& x);

}  // namespace magellano::ops
