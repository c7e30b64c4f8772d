// Elementwise arithmetic with row broadcast.
// Kernels:
//   add        out[i] = a[i] + alpha * b[i % b_n]             a, out: (n); b: (b_n), n % b_n == 0
//   mul        out[i] = a[i] * b[i % b_n]
//   scale_acc  out[i] (+)= s * x[i]                            acc: add to out
//   mul_acc    out[i] (+)= s * x[i] * y[i % y_n]
//   broadcast_rows  out[r, c] = v[c]                           out: (n) = (R, C), v: (C)
//   spread_rows     out[r, c] (+)= s * v[r]                    out: (n) = (R, c), v: (R)
//   spread_rows_vec spread_rows in the CPU mapping (ops/mapping.hpp): global (ceil(c / 16), R),
//                   one work-item per 16 columns of a row (float16 stores, a partial last block)
// The f32 <-> f16 casts are in cl/half.cl.

__kernel void add(__global const float* a, ulong a_off, __global const float* b, ulong b_off,
                  __global float* out, ulong out_off, long n, long b_n, float alpha) {
  a += a_off; b += b_off; out += out_off;
  long i = get_global_id(0);
  if (i < n) out[i] = a[i] + alpha * b[i % b_n];
}

__kernel void mul(__global const float* a, ulong a_off, __global const float* b, ulong b_off,
                  __global float* out, ulong out_off, long n, long b_n) {
  a += a_off; b += b_off; out += out_off;
  long i = get_global_id(0);
  if (i < n) out[i] = a[i] * b[i % b_n];
}

__kernel void scale_acc(__global const float* x, ulong x_off, __global float* out, ulong out_off,
                        long n, float s, int acc) {
  x += x_off; out += out_off;
  long i = get_global_id(0);
  if (i < n) ACC_STORE(out, i, s * x[i], acc);
}

__kernel void mul_acc(__global const float* x, ulong x_off, __global const float* y, ulong y_off,
                      __global float* out, ulong out_off, long n, long y_n, float s, int acc) {
  x += x_off; y += y_off; out += out_off;
  long i = get_global_id(0);
  if (i < n) ACC_STORE(out, i, s * x[i] * y[i % y_n], acc);
}

__kernel void broadcast_rows(__global const float* v, ulong v_off, __global float* out,
                             ulong out_off, long n, long c) {
  v += v_off; out += out_off;
  long i = get_global_id(0);
  if (i < n) out[i] = v[i % c];
}

// out[i] (+)= s * v[i / c]: one value per row spread over its c columns.   out: (n) = (R, c)
__kernel void spread_rows(__global const float* v, ulong v_off, __global float* out, ulong out_off,
                          long n, long c, float s, int acc) {
  v += v_off; out += out_off;
  long i = get_global_id(0);
  if (i < n) ACC_STORE(out, i, s * v[i / c], acc);
}

__kernel void spread_rows_vec(__global const float* v, ulong v_off, __global float* out,
                              ulong out_off, long n, long c, float s, int acc) {
  v += v_off; out += out_off;
  const long c0 = get_global_id(0) * 16, r = get_global_id(1);
  if (c0 >= c || r * c >= n) return;
  __global float* o = out + r * c + c0;
  const float16 x = (float16)(s * v[r]);
  vstore16_part(acc ? vload16_part(o, c - c0) + x : x, o, c - c0);
}
