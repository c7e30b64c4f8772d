// Deterministic reductions: fixed work-group sizes, fixed tree order, no atomics.
// Kernels:
//   sum_partial   partial[g] = sum of x over group g's grid-stride slice   x: (n); partial: (G)
//   sum_final     out[0] (+)= scale * sum(partial[0..G))                   one work-group
//   sum_last      out[r] (+)= scale * sum_c x[r, c]                        x: (R, C); out: (R); a group per row
//   colsum_partial partial[k, c] = sum_{r in chunk k} x[r, c]              x: (R, C); partial: (K, C)
//   colsum_final  out[c] (+)= sum_k partial[k, c]                          out: (C)
//   sum_last_row  sum_last in the CPU mapping (ops/mapping.hpp): one work-item per row r < R
//                 walks it in float16 steps (a scalar tail), lanes folded by a fixed tree
// LOCAL (a -D knob, default 256) is the work-group size of the tree reductions.
// VEC (a -D knob, 1 or 16, default 1): columns per work-item of colsum_partial and colsum_final;
// launch ceil(C / VEC) work-items along the columns. 16 is the CPU mapping (ops/mapping.hpp:
// float16 loads along a row), 1 the GPU's (neighbouring work-items read neighbouring columns).
// Each column is summed over the same rows in the same order either way.
#ifndef LOCAL
#define LOCAL 256
#endif
#ifndef VEC
#define VEC 1
#endif

__kernel __attribute__((reqd_work_group_size(LOCAL, 1, 1)))
void sum_partial(__global const float* x, ulong x_off, __global float* partial, ulong partial_off,
                 long n) {
  x += x_off; partial += partial_off;
  __local float s[LOCAL];
  long stride = get_global_size(0);
  float acc = 0.0f;
  for (long i = get_global_id(0); i < n; i += stride) acc += x[i];
  float total = group_sum(s, acc, LOCAL);
  if (get_local_id(0) == 0) partial[get_group_id(0)] = total;
}

__kernel __attribute__((reqd_work_group_size(LOCAL, 1, 1)))
void sum_final(__global const float* partial, ulong partial_off, __global float* out, ulong out_off,
               long g, float scale, int acc) {
  partial += partial_off; out += out_off;
  __local float s[LOCAL];
  float v = 0.0f;
  for (long i = get_local_id(0); i < g; i += LOCAL) v += partial[i];
  float total = group_sum(s, v, LOCAL);
  if (get_local_id(0) == 0) ACC_STORE(out, 0, scale * total, acc);
}

__kernel __attribute__((reqd_work_group_size(LOCAL, 1, 1)))
void sum_last(__global const float* x, ulong x_off, __global float* out, ulong out_off, long rows,
              long cols, float scale, int acc) {
  x += x_off; out += out_off;
  __local float s[LOCAL];
  long r = get_group_id(0);  // launched with exactly `rows` groups: no early return before
                             // the barrier (PoCL 3.1 miscompiles that pattern)
  float v = 0.0f;
  for (long c = get_local_id(0); c < cols; c += LOCAL) v += x[r * cols + c];
  float total = group_sum(s, v, LOCAL);
  if (get_local_id(0) == 0) ACC_STORE(out, r, scale * total, acc);
}

__kernel void sum_last_row(__global const float* x, ulong x_off, __global float* out,
                           ulong out_off, long rows, long cols, float scale, int acc) {
  x += x_off; out += out_off;
  const long r = get_global_id(0);
  if (r >= rows) return;
  __global const float* xr = x + r * cols;
  float16 s16 = 0.0f;
  long c = 0;
  for (; c + 16 <= cols; c += 16) s16 += vload16(0, xr + c);
  float s = hsum16(s16);
  for (; c < cols; ++c) s += xr[c];
  ACC_STORE(out, r, scale * s, acc);
}

__kernel void colsum_partial(__global const float* x, ulong x_off, __global float* partial,
                             ulong partial_off, long rows, long cols, long chunk) {
  x += x_off; partial += partial_off;
  long c0 = get_global_id(0) * VEC, k = get_global_id(1);
  if (c0 >= cols || k * chunk >= rows) return;
  long r0 = k * chunk, r1 = min(rows, r0 + chunk);
#if VEC == 16
  if (c0 + 16 <= cols) {
    float16 v = 0.0f;
    for (long r = r0; r < r1; ++r) v += vload16(0, x + r * cols + c0);
    vstore16(v, 0, partial + k * cols + c0);
    return;
  }
#endif
  for (long c = c0; c < min(c0 + VEC, cols); ++c) {
    float v = 0.0f;
    for (long r = r0; r < r1; ++r) v += x[r * cols + c];
    partial[k * cols + c] = v;
  }
}

__kernel void colsum_final(__global const float* partial, ulong partial_off, __global float* out,
                           ulong out_off, long chunks, long cols, float scale, int acc) {
  partial += partial_off; out += out_off;
  long c0 = get_global_id(0) * VEC;
  if (c0 >= cols) return;
#if VEC == 16
  if (c0 + 16 <= cols) {
    float16 v = 0.0f;
    for (long k = 0; k < chunks; ++k) v += vload16(0, partial + k * cols + c0);
    v *= scale;
    vstore16(acc ? vload16(0, out + c0) + v : v, 0, out + c0);
    return;
  }
#endif
  for (long c = c0; c < min(c0 + VEC, cols); ++c) {
    float v = 0.0f;
    for (long k = 0; k < chunks; ++k) v += partial[k * cols + c];
    ACC_STORE(out, c, scale * v, acc);
  }
}
