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
// -D knob: VEC (1 or 16, default 1), elements per work-item of add, mul, scale_acc and mul_acc
// (launch ceil(n / VEC) work-items): 16 is the CPU mapping (ops/mapping.hpp: float16 loads and
// stores), 1 the GPU's.
// The f32 <-> f16 casts are in cl/half.cl.
#ifndef VEC
#define VEC 1
#endif

// b[j % b_n] for the elements j of [i, min(i + VEC, n)) (b repeats with period b_n).
inline floatv load_repeating(__global const float* b, long i, long b_n, long n) {
#if VEC == 16
  const long j = i % b_n;
  if (j + 16 <= b_n && i + 16 <= n) return vload16(0, b + j);
  float a[16];
  for (int l = 0; l < 16; ++l) a[l] = i + l < n ? b[(i + l) % b_n] : 0.0f;
  return vload16(0, a);
#else
  return b[i % b_n];
#endif
}

__kernel void add(__global const float* a, ulong a_off, __global const float* b, ulong b_off,
                  __global float* out, ulong out_off, long n, long b_n, float alpha) {
  a += a_off; b += b_off; out += out_off;
  const long i = get_global_id(0) * VEC;
  if (i < n) STOREV(LOADV(a, i, n) + alpha * load_repeating(b, i, b_n, n), out, i, n);
}

__kernel void mul(__global const float* a, ulong a_off, __global const float* b, ulong b_off,
                  __global float* out, ulong out_off, long n, long b_n) {
  a += a_off; b += b_off; out += out_off;
  const long i = get_global_id(0) * VEC;
  if (i < n) STOREV(LOADV(a, i, n) * load_repeating(b, i, b_n, n), out, i, n);
}

__kernel void scale_acc(__global const float* x, ulong x_off, __global float* out, ulong out_off,
                        long n, float s, int acc) {
  x += x_off; out += out_off;
  const long i = get_global_id(0) * VEC;
  if (i < n) ACC_STOREV(out, i, n, s * LOADV(x, i, n), acc);
}

__kernel void mul_acc(__global const float* x, ulong x_off, __global const float* y, ulong y_off,
                      __global float* out, ulong out_off, long n, long y_n, float s, int acc) {
  x += x_off; y += y_off; out += out_off;
  const long i = get_global_id(0) * VEC;
  if (i < n) ACC_STOREV(out, i, n, s * LOADV(x, i, n) * load_repeating(y, i, y_n, n), acc);
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
