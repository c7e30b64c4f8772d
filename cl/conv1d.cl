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
