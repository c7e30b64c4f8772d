// Causal depthwise conv1d, channels last (Mamba's short convolution).
//   y[b, t, c] = bias[c] + sum_{k < W} w[c, k] * x[b, t - (W - 1) + k, c]   (x = 0 before t = 0)
// Layouts (row-major): x, y, dy, dx: (B, L, C), seen as rows = B * L rows of C; w: (C, W);
// bias: (C).
// Kernels:
//   conv1d_fwd         one work-item per (b, t, c): y = bias + taps in increasing k
//   conv1d_bwd_dx      dx[b, s, c] (+)= sum_k w[c, k] * dy[b, s + W - 1 - k, c]  (s + W-1-k < L)
//   conv1d_bwd_dw_partial  partial[j, c, k] = sum over rows r in chunk j (rows [j*chunk,
//                      (j+1)*chunk)) of dy[r, c] * x[r - (W-1-k), c] (same sequence only);
//                      the host finishes dw with reduce.cl's colsum_final (fixed order).
// The CPU mapping (ops/mapping.hpp) of the same three kernels, built with WIDTH > 0 only: one
// work-item per (16 channels, chunk of `chunk` rows) with the block's W weight vectors in
// registers, float16 loads along the channels (a partial last block); global size
// (ceil(C / 16), ceil(rows / chunk)). Each output sums its taps in the same order as above.
//   conv1d_fwd_vec, conv1d_bwd_dx_vec, conv1d_bwd_dw_partial_vec
// Knobs: WIDTH (-D): the kernel width W baked in (loops fully unrolled; the fast path is
//   WIDTH=4); WIDTH=0 (default) reads W from the `width` argument. With WIDTH > 0 the `width`
//   argument is ignored.
#ifndef WIDTH
#define WIDTH 0
#endif
#if WIDTH > 0
#define KW WIDTH
#else
#define KW width
#endif

__kernel void conv1d_fwd(__global const float* x, ulong x_off, __global const float* w,
                         ulong w_off, __global const float* bias, ulong bias_off,
                         __global float* y, ulong y_off, long rows, long len, long ch, long width) {
  x += x_off; w += w_off; bias += bias_off; y += y_off;
  long i = get_global_id(0);
  if (i >= rows * ch) return;
  long r = i / ch, c = i - r * ch, t = r % len;
  float s = bias[c];
#pragma unroll
  for (long k = 0; k < KW; ++k) {
    long shift = KW - 1 - k;  // x row r - shift
    if (t >= shift) s += w[c * KW + k] * x[i - shift * ch];
  }
  y[i] = s;
}

__kernel void conv1d_bwd_dx(__global const float* dy, ulong dy_off, __global const float* w,
                            ulong w_off, __global float* dx, ulong dx_off, long rows, long len,
                            long ch, long width, int acc) {
  dy += dy_off; w += w_off; dx += dx_off;
  long i = get_global_id(0);
  if (i >= rows * ch) return;
  long r = i / ch, c = i - r * ch, t = r % len;
  float s = 0.0f;
#pragma unroll
  for (long k = 0; k < KW; ++k) {
    long shift = KW - 1 - k;  // dy row r + shift
    if (t + shift < len) s += w[c * KW + k] * dy[i + shift * ch];
  }
  ACC_STORE(dx, i, s, acc);
}

// Global size (C * W, chunks). partial: (chunks, C, W).
__kernel void conv1d_bwd_dw_partial(__global const float* x, ulong x_off, __global const float* dy,
                                    ulong dy_off, __global float* partial, ulong partial_off,
                                    long rows, long len, long ch, long width, long chunk) {
  x += x_off; dy += dy_off; partial += partial_off;
  long ck = get_global_id(0), j = get_global_id(1);
  if (ck >= ch * KW || j * chunk >= rows) return;
  long c = ck / KW, k = ck - c * KW, shift = KW - 1 - k;
  long r0 = j * chunk, r1 = min(rows, r0 + chunk);
  float s = 0.0f;
  for (long r = r0; r < r1; ++r)
    if (r % len >= shift) s += dy[r * ch + c] * x[(r - shift) * ch + c];
  partial[j * ch * KW + ck] = s;
}

#if WIDTH > 0
// ---- CPU mapping: one work-item per (16 channels, chunk of rows) -------------------------

// wk[k] = w[c0 + i, k] in lane i, for the n channels from c0 (0 in lanes i >= n).
inline void conv_weights(__global const float* w, long c0, long n, float16* wk) {
  float a[WIDTH][16];
  for (int i = 0; i < 16; ++i)
    for (int k = 0; k < WIDTH; ++k) a[k][i] = i < n ? w[(c0 + i) * WIDTH + k] : 0.0f;
  for (int k = 0; k < WIDTH; ++k) wk[k] = vload16(0, a[k]);
}

__kernel void conv1d_fwd_vec(__global const float* x, ulong x_off, __global const float* w,
                             ulong w_off, __global const float* bias, ulong bias_off,
                             __global float* y, ulong y_off, long rows, long len, long ch,
                             long chunk) {
  x += x_off; w += w_off; bias += bias_off; y += y_off;
  const long c0 = get_global_id(0) * 16, r0 = get_global_id(1) * chunk;
  if (c0 >= ch || r0 >= rows) return;
  const long n = ch - c0;  // channels of this block (16 unless the last)
  float16 wk[WIDTH];
  conv_weights(w, c0, n, wk);
  const float16 b = vload16_part(bias + c0, n);
  for (long r = r0; r < min(rows, r0 + chunk); ++r) {
    const long t = r % len;
    float16 s = b;
#pragma unroll
    for (int k = 0; k < WIDTH; ++k) {
      const long shift = WIDTH - 1 - k;  // x row r - shift
      if (t >= shift) s += wk[k] * vload16_part(x + (r - shift) * ch + c0, n);
    }
    vstore16_part(s, y + r * ch + c0, n);
  }
}

__kernel void conv1d_bwd_dx_vec(__global const float* dy, ulong dy_off, __global const float* w,
                                ulong w_off, __global float* dx, ulong dx_off, long rows,
                                long len, long ch, long chunk, int acc) {
  dy += dy_off; w += w_off; dx += dx_off;
  const long c0 = get_global_id(0) * 16, r0 = get_global_id(1) * chunk;
  if (c0 >= ch || r0 >= rows) return;
  const long n = ch - c0;
  float16 wk[WIDTH];
  conv_weights(w, c0, n, wk);
  for (long r = r0; r < min(rows, r0 + chunk); ++r) {
    const long t = r % len;
    float16 s = 0.0f;
#pragma unroll
    for (int k = 0; k < WIDTH; ++k) {
      const long shift = WIDTH - 1 - k;  // dy row r + shift
      if (t + shift < len) s += wk[k] * vload16_part(dy + (r + shift) * ch + c0, n);
    }
    __global float* out = dx + r * ch + c0;
    vstore16_part(acc ? vload16_part(out, n) + s : s, out, n);
  }
}

// partial: (chunks, C, W), as conv1d_bwd_dw_partial's.
__kernel void conv1d_bwd_dw_partial_vec(__global const float* x, ulong x_off,
                                        __global const float* dy, ulong dy_off,
                                        __global float* partial, ulong partial_off, long rows,
                                        long len, long ch, long chunk) {
  x += x_off; dy += dy_off; partial += partial_off;
  const long c0 = get_global_id(0) * 16, j = get_global_id(1), r0 = j * chunk;
  if (c0 >= ch || r0 >= rows) return;
  const long n = ch - c0;
  float16 s[WIDTH];
  for (int k = 0; k < WIDTH; ++k) s[k] = 0.0f;
  for (long r = r0; r < min(rows, r0 + chunk); ++r) {
    const long t = r % len;
    const float16 g = vload16_part(dy + r * ch + c0, n);
#pragma unroll
    for (int k = 0; k < WIDTH; ++k) {
      const long shift = WIDTH - 1 - k;
      if (t >= shift) s[k] += g * vload16_part(x + (r - shift) * ch + c0, n);
    }
  }
  float a[WIDTH][16];
  for (int k = 0; k < WIDTH; ++k) vstore16(s[k], 0, a[k]);
  __global float* p = partial + j * ch * WIDTH + c0 * WIDTH;
  for (int i = 0; i < min(n, 16L); ++i)
    for (int k = 0; k < WIDTH; ++k) p[i * WIDTH + k] = a[k][i];
}
#endif
