// Row blocks of a 2-D tensor, with autograd (device copies only, no kernels).
//
// split_rows(x, offsets): x (R, D) f32, offsets k + 1 non-decreasing integers from 0 to R.
//   Returns k tensors, piece i = copy of rows [offsets[i], offsets[i+1]) as (c_i, D); an empty
//   range gives an undefined Tensor. Backward: each piece's gradient lands in its rows of dx;
//   rows of pieces that received none are 0 when dx is overwritten.
// concat_rows(xs, rows_total): the defined xs (c_i, D) stacked in order -> (R, D), R the sum of
//   their rows. Backward: dxs[i] = its rows of dout.
// Used by the MoE layer's per-expert path (LoRA or frozen low-precision experts).
#pragma once
#include <cstdint>
#include <vector>

#include "magellano/autograd/tape.hpp"

namespace magellano::ops {

std::vector<Tensor> split_rows(const Tensor& x, const std::vector<int64_t>& offsets);
Tensor concat_rows(const std::vector<Tensor>& xs, int64_t rows_total);

}  // namespace magellano::ops
