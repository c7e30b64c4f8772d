// Row gather and deterministic row scatter-add (no atomics).
// Kernels:
//   gather_rows       out[n, d] (+)= src[idx[n], d]; 0 where idx[n] is outside [0, R)
//                     src: (R, D); idx: (N) i32; out: (N, D); all row-major
//   segment_sum_rows  out[r, d] (+)= sum over sorted positions i with sorted_keys[i] == r of
//                     src[perm[i], d], in increasing i (= increasing token n: the sort is stable).
//                     One work-item per (sorted position i, d); only the first position of each
//                     run of equal keys works. Keys outside [0, R) are skipped. Rows no key names
//                     are not touched (the host zero-fills out first when it overwrites).
//                     src: (N, D); sorted_keys, perm: (N) i32 (from cl/sort.cl); out: (R, D)
//   gather_rows_half       gather_rows from an fp16 src (widened exactly; out f32)
//   segment_sum_rows_half  segment_sum_rows into an fp16 out: the fp32 sum (plus the old value
//                          when acc) rounded once to nearest even
//   gather_rows_vec, segment_sum_rows_vec   gather_rows, segment_sum_rows in the CPU mapping
//                     (ops/mapping.hpp): global (ceil(D / 16), N), one work-item per 16 columns of
//                     an output row (gather) or of a sorted position (segment sum: only the first
//                     of a run works), float16 loads and stores, a partial last block; the same
//                     sums in the same order
// No -D knobs.

// Where output element i = (t, c) of a gather reads: src element idx[t] * d + c, or -1 for an
// id outside [0, r) (the output is 0 there).
inline long gather_at(__global const int* idx, long i, long d, long r) {
  long t = i / d;
  int row = idx[t];
  return (row >= 0 && row < r) ? (long)row * d + (i - t * d) : -1;
}

__kernel void gather_rows(__global const float* src, ulong src_off, __global const int* idx,
                          ulong idx_off, __global float* out, ulong out_off, long n, long d,
                          long r, int acc) {
  src += src_off; idx += idx_off; out += out_off;
  long i = get_global_id(0);
  if (i >= n * d) return;
  long at = gather_at(idx, i, d, r);
  ACC_STORE(out, i, at >= 0 ? src[at] : 0.0f, acc);
}

__kernel void gather_rows_half(__global const half* src, ulong src_off, __global const int* idx,
                               ulong idx_off, __global float* out, ulong out_off, long n, long d,
                               long r, int acc) {
  src += src_off; idx += idx_off; out += out_off;
  long i = get_global_id(0);
  if (i >= n * d) return;
  long at = gather_at(idx, i, d, r);
  ACC_STORE(out, i, at >= 0 ? vload_half(at, src) : 0.0f, acc);
}

// Work-item g of a segment sum: column *c of the run of equal keys that starts at sorted
// position i = g / d. Returns that run's row, or -1 when g is past the end, position i does
// not start a run, or the key is outside [0, r) (nothing to write).
inline int run_row(__global const int* sorted_keys, long g, long n, long d, long r, long* i, long* c) {
  if (g >= n * d) return -1;
  *i = g / d;
  *c = g - *i * d;
  int row = sorted_keys[*i];
  return ((*i > 0 && sorted_keys[*i - 1] == row) || row < 0 || row >= r) ? -1 : row;
}

// The sum of src[perm[j], c] over the run of keys equal to `row` that starts at sorted position i.
inline float run_sum(__global const float* src, __global const int* sorted_keys,
                     __global const int* perm, long i, long n, long d, long c, int row) {
  float s = 0.0f;
  for (long j = i; j < n && sorted_keys[j] == row; ++j) s += src[(long)perm[j] * d + c];
  return s;
}

__kernel void segment_sum_rows(__global const float* src, ulong src_off,
                               __global const int* sorted_keys, ulong sorted_keys_off,
                               __global const int* perm, ulong perm_off, __global float* out,
                               ulong out_off, long n, long d, long r, int acc) {
  src += src_off; sorted_keys += sorted_keys_off; perm += perm_off; out += out_off;
  long i, c;
  int row = run_row(sorted_keys, get_global_id(0), n, d, r, &i, &c);
  if (row < 0) return;
  ACC_STORE(out, (long)row * d + c, run_sum(src, sorted_keys, perm, i, n, d, c, row), acc);
}

__kernel void segment_sum_rows_half(__global const float* src, ulong src_off,
                                    __global const int* sorted_keys, ulong sorted_keys_off,
                                    __global const int* perm, ulong perm_off, __global half* out,
                                    ulong out_off, long n, long d, long r, int acc) {
  src += src_off; sorted_keys += sorted_keys_off; perm += perm_off; out += out_off;
  long i, c;
  int row = run_row(sorted_keys, get_global_id(0), n, d, r, &i, &c);
  if (row < 0) return;
  long o = (long)row * d + c;
  float s = run_sum(src, sorted_keys, perm, i, n, d, c, row);
  vstore_half_rte(acc ? vload_half(o, out) + s : s, o, out);
}

// ---- CPU mapping: one work-item per (16 columns, row) ------------------------------------

__kernel void gather_rows_vec(__global const float* src, ulong src_off, __global const int* idx,
                              ulong idx_off, __global float* out, ulong out_off, long n, long d,
                              long r, int acc) {
  src += src_off; idx += idx_off; out += out_off;
  const long c0 = get_global_id(0) * 16, t = get_global_id(1);
  if (c0 >= d || t >= n) return;
  const int row = idx[t];
  const long w = d - c0;  // columns of this block (16 unless the last)
  const float16 v = (row >= 0 && row < r) ? vload16_part(src + (long)row * d + c0, w) : 0.0f;
  __global float* o = out + t * d + c0;
  vstore16_part(acc ? vload16_part(o, w) + v : v, o, w);
}

__kernel void segment_sum_rows_vec(__global const float* src, ulong src_off,
                                   __global const int* sorted_keys, ulong sorted_keys_off,
                                   __global const int* perm, ulong perm_off, __global float* out,
                                   ulong out_off, long n, long d, long r, int acc) {
  src += src_off; sorted_keys += sorted_keys_off; perm += perm_off; out += out_off;
  const long c0 = get_global_id(0) * 16, i = get_global_id(1);
  if (c0 >= d || i >= n) return;
  const int row = sorted_keys[i];
  if ((i > 0 && sorted_keys[i - 1] == row) || row < 0 || row >= r) return;
  const long w = d - c0;
  float16 s = 0.0f;
  for (long j = i; j < n && sorted_keys[j] == row; ++j) s += vload16_part(src + (long)perm[j] * d + c0, w);
  __global float* o = out + (long)row * d + c0;
  vstore16_part(acc ? vload16_part(o, w) + s : s, o, w);
}
