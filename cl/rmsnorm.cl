// RMSNorm over the last dimension: y = x * rsqrt(mean(x^2) + eps) * w.
// Shapes: x, y, dy, dx: (R, D) row-major (R = product of the leading dimensions); w, dw: (D);
// rstd: (R), saved by the forward for the backward; partial: (K, D), K = ceil(R / chunk).
// Kernels:
//   rms_norm_fwd          y = x * rstd * w; rstd[r] = rsqrt(mean_c x[r,c]^2 + eps)   a group per row
//   rms_norm_bwd_dx       dx (+)= rstd * (dy*w - x * rstd^2 * mean_c(dy*w*x))         a group per row
//   rms_norm_bwd_dw_partial partial[k, c] = sum_{r in chunk k} dy[r,c] * x[r,c] * rstd[r]
//   rms_norm_bwd_dw_final dw[c] (+)= sum_k partial[k, c]                              fixed k order
// Knobs: LOCAL (-D, default 256): work-group size of the per-row kernels, a power of two.
// Deterministic: per-row sums are fixed-shape local-memory trees; dw sums chunks in order.
// Launch the per-row kernels with exactly one group per row: they have no early
// `if (r >= rows) return;` because PoCL 3.1 miscompiles one ahead of the tree's barriers.
#ifndef LOCAL
#define LOCAL 256
#endif

__kernel __attribute__((reqd_work_group_size(LOCAL, 1, 1)))
void rms_norm_fwd(__global const float* x, ulong x_off, __global const float* w, ulong w_off,
                  __global float* y, ulong y_off, __global float* rstd, ulong rstd_off,
                  long rows, long d, float eps) {
  x += x_off; w += w_off; y += y_off; rstd += rstd_off;
  __local float s[LOCAL];
  long r = get_group_id(0);
  __global const float* xr = x + r * d;
  float v = 0.0f;
  for (long c = get_local_id(0); c < d; c += LOCAL) v += xr[c] * xr[c];
  float rs = rsqrt(group_sum(s, v, LOCAL) / (float)d + eps);
  for (long c = get_local_id(0); c < d; c += LOCAL) y[r * d + c] = xr[c] * rs * w[c];
  if (get_local_id(0) == 0) rstd[r] = rs;
}

// g = dy * w; dx = rstd * (g - x * rstd^2 * sum(g * x) / d)
__kernel __attribute__((reqd_work_group_size(LOCAL, 1, 1)))
void rms_norm_bwd_dx(__global const float* x, ulong x_off, __global const float* w, ulong w_off,
                     __global const float* rstd, ulong rstd_off, __global const float* dy,
                     ulong dy_off, __global float* dx, ulong dx_off, long rows, long d, int acc) {
  x += x_off; w += w_off; rstd += rstd_off; dy += dy_off; dx += dx_off;
  __local float s[LOCAL];
  long r = get_group_id(0);
  __global const float* xr = x + r * d;
  __global const float* dyr = dy + r * d;
  float v = 0.0f;
  for (long c = get_local_id(0); c < d; c += LOCAL) v += dyr[c] * w[c] * xr[c];
  float rs = rstd[r];
  float k = rs * rs * group_sum(s, v, LOCAL) / (float)d;
  for (long c = get_local_id(0); c < d; c += LOCAL)
    ACC_STORE(dx, r * d + c, rs * (dyr[c] * w[c] - xr[c] * k), acc);
}

// Global (d, K): one work-item per (column, chunk of rows).
__kernel void rms_norm_bwd_dw_partial(__global const float* x, ulong x_off,
                                      __global const float* rstd, ulong rstd_off,
                                      __global const float* dy, ulong dy_off,
                                      __global float* partial, ulong partial_off, long rows,
                                      long d, long chunk) {
  x += x_off; rstd += rstd_off; dy += dy_off; partial += partial_off;
  long c = get_global_id(0), k = get_global_id(1);
  if (c >= d || k * chunk >= rows) return;
  long r0 = k * chunk, r1 = min(rows, r0 + chunk);
  float v = 0.0f;
  for (long r = r0; r < r1; ++r) v += dy[r * d + c] * x[r * d + c] * rstd[r];
  partial[k * d + c] = v;
}

__kernel void rms_norm_bwd_dw_final(__global const float* partial, ulong partial_off,
                                    __global float* dw, ulong dw_off, long chunks, long d,
                                    int acc) {
  partial += partial_off; dw += dw_off;
  long c = get_global_id(0);
  if (c >= d) return;
  float v = 0.0f;
  for (long k = 0; k < chunks; ++k) v += partial[k * d + c];
  ACC_STORE(dw, c, v, acc);
}
