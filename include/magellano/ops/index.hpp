// Index ops: row gather (embedding lookup), deterministic row scatter-add, and the device sort
// they share. Everything is deterministic: the scatter-add sums each row's contributions in
// increasing token order after a stable device sort; no atomics.
//
// Out-of-range ids (outside [0, R)): the kernels are memory-safe and give a defined result
// instead of checking on the device: gather_rows / embedding produce a zero row for such an id
// and send it no gradient; scatter_add_rows drops such a source row. Detecting them costs a
// blocking read, so it is left to validate_indices(), for tests, data loaders and debugging.
#pragma once
#include <cstdint>

#include "magellano/autograd/tape.hpp"

namespace magellano::ops {

// A stable sort of i32 keys on the device (bitonic network, no autograd):
//   keys:        (N) i32, any values (negative ones sort first)
//   result.keys: (N) i32, keys in ascending order
//   result.perm: (N) i32, the original position of each sorted key: keys_sorted[i] =
//                keys[perm[i]]; equal keys keep increasing position.
// Reusable for permuting tokens by expert (MoE): gather_rows(x, perm) groups them.
struct SortedIndices {
  Tensor keys;
  Tensor perm;
};
SortedIndices sort_indices(const Tensor& keys);

// out[n, :] = src[idx[n], :]
//   src: (R, D) f32 row-major; idx: (N) i32; returns (N, D) f32.
// Backward: dsrc[r] = sum of dout[n] over idx[n] == r, in increasing n (sort + segment sums);
// rows no id names get 0.
Tensor gather_rows(const Tensor& src, const Tensor& idx);

// The embedding lookup: weight (V, D) f32 or f16; ids: any shape (up to 3-D) i32; returns
// (ids..., D) f32. Same as gather_rows with ids flattened. Work is O(N * D + N log N) forward
// and backward, plus a zero fill of dweight when backward overwrites it. An f16 weight (fp16
// parameter storage) is widened as it is read; its fp16 gradient gets each touched element's
// fp32 segment sum added in fp32 and rounded once to fp16.
Tensor embedding(const Tensor& weight, const Tensor& ids);

// out[r, :] = sum of src[n, :] over idx[n] == r, in increasing n (0 for rows no id names).
//   src: (N, D) f32; idx: (N) i32; rows = R >= 0; returns (R, D) f32.
// Backward: dsrc = gather_rows(dout, idx).
Tensor scatter_add_rows(const Tensor& src, const Tensor& idx, int64_t rows);

// Building blocks (no autograd). acc: add to out instead of overwriting it.
//   gather_rows_into:      src (R, D) f32 or f16, idx (N) i32, out (N, D) f32
//   scatter_add_rows_into: src (N, D) f32, sorted = sort_indices(idx) with idx (N), out (R, D)
//                          f32 or f16 (each element's fp32 sum rounded once);
//                          when acc is false, rows no key names are set to 0, else untouched.
void gather_rows_into(const Tensor& src, const Tensor& idx, const Tensor& out, bool acc);
void scatter_add_rows_into(const Tensor& src, const SortedIndices& sorted, const Tensor& out,
                           bool acc);

// Reads idx back (blocking) and throws Error naming the first id outside [0, rows) and its
// position. For tests, data loading and debugging; not for the training hot loop.
void validate_indices(const Tensor& idx, int64_t rows, const char* what = "indices");

}  // namespace magellano::ops
