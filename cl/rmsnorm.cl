// RMSNorm over the last dimension: y = x * rsqrt(mean(x^2) + eps) * w.
// Shapes: x, y, dy, dx: (R, D) row-major (R = product of the leading dimensions); w, dw: (D);
// rstd: (R), saved by the forward for the backward; partial: (K, D), K = ceil(R / chunk).
// Kernels:
//   rms_norm_fwd          y = x * rstd * w; rstd[r] = rsqrt(mean_c x[r,c]^2 + eps)   a group per row
//   rms_norm_bwd_dx       dx (+)= rstd * (dy*w - x * rstd^2 * mean_c(dy*w*x))         a group per row
//   rms_norm_bwd_dw_partial partial[k, c] = sum_{r in chunk k} dy[r,c] * x[r,c] * rstd[r]
//                         (dw[c] (+)= sum_k partial[k, c] in k order: reduce.cl's colsum_final)
// Knobs: LOCAL (-D, default 256): work-group size of the per-row kernels, a power of two.
//        VEC (-D, 1 or 16, default 1): columns per work-item of the two dw kernels, launched
//        with ceil(D / VEC) work-items along the columns: 16 in the CPU mapping (float16 loads
//        along a row), 1 in the GPU mapping. The same sums in the same order either way.
// Deterministic: per-row sums are fixed-shape local-memory trees; dw sums chunks in order.
// Launch the per-row kernels with exactly one group per row: they have no early
// `if (r >= rows) return;` because PoCL 3.1 miscompiles one ahead of the tree's barriers.
// The CPU mapping (ops/mapping.hpp) of the two per-row kernels: one work-item per row walks it
// in float16 steps (a scalar tail for the last D % 16), lane sums folded by a fixed tree.
// Launch `rows` work-items, any work-group size (no barriers).
//   rms_norm_fwd_row, rms_norm_bwd_dx_row   as rms_norm_fwd, rms_norm_bwd_dx
#ifndef LOCAL
#define LOCAL 256
#endif
#ifndef VEC
#define VEC 1
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

// Global (ceil(d / VEC), K): one work-item per (VEC columns, chunk of rows).
__kernel void rms_norm_bwd_dw_partial(__global const float* x, ulong x_off,
                                      __global const float* rstd, ulong rstd_off,
                                      __global const float* dy, ulong dy_off,
                                      __global float* partial, ulong partial_off, long rows,
                                      long d, long chunk) {
  x += x_off; rstd += rstd_off; dy += dy_off; partial += partial_off;
  long c0 = get_global_id(0) * VEC, k = get_global_id(1);
  if (c0 >= d || k * chunk >= rows) return;
  long r0 = k * chunk, r1 = min(rows, r0 + chunk);
#if VEC == 16
  if (c0 + 16 <= d) {
    float16 v = 0.0f;
    for (long r = r0; r < r1; ++r) v += vload16(0, dy + r * d + c0) * vload16(0, x + r * d + c0) * rstd[r];
    vstore16(v, 0, partial + k * d + c0);
    return;
  }
#endif
  for (long c = c0; c < min(c0 + VEC, d); ++c) {
    float v = 0.0f;
    for (long r = r0; r < r1; ++r) v += dy[r * d + c] * x[r * d + c] * rstd[r];
    partial[k * d + c] = v;
  }
}

// ---- CPU mapping: one work-item per row --------------------------------------------------

__kernel void rms_norm_fwd_row(__global const float* x, ulong x_off, __global const float* w,
                               ulong w_off, __global float* y, ulong y_off, __global float* rstd,
                               ulong rstd_off, long rows, long d, float eps) {
  x += x_off; w += w_off; y += y_off; rstd += rstd_off;
  const long r = get_global_id(0);
  if (r >= rows) return;
  __global const float* xr = x + r * d;
  __global float* yr = y + r * d;
  float16 s16 = 0.0f;
  long c = 0;
  for (; c + 16 <= d; c += 16) {
    const float16 v = vload16(0, xr + c);
    s16 += v * v;
  }
  float s = hsum16(s16);
  for (; c < d; ++c) s += xr[c] * xr[c];
  const float rs = rsqrt(s / (float)d + eps);
  for (c = 0; c + 16 <= d; c += 16) vstore16(vload16(0, xr + c) * rs * vload16(0, w + c), 0, yr + c);
  for (; c < d; ++c) yr[c] = xr[c] * rs * w[c];
  rstd[r] = rs;
}

__kernel void rms_norm_bwd_dx_row(__global const float* x, ulong x_off, __global const float* w,
                                  ulong w_off, __global const float* rstd, ulong rstd_off,
                                  __global const float* dy, ulong dy_off, __global float* dx,
                                  ulong dx_off, long rows, long d, int acc) {
  x += x_off; w += w_off; rstd += rstd_off; dy += dy_off; dx += dx_off;
  const long r = get_global_id(0);
  if (r >= rows) return;
  __global const float* xr = x + r * d;
  __global const float* dyr = dy + r * d;
  __global float* dxr = dx + r * d;
  float16 s16 = 0.0f;
  long c = 0;
  for (; c + 16 <= d; c += 16) s16 += vload16(0, dyr + c) * vload16(0, w + c) * vload16(0, xr + c);
  float s = hsum16(s16);
  for (; c < d; ++c) s += dyr[c] * w[c] * xr[c];
  const float rs = rstd[r];
  const float k = rs * rs * s / (float)d;
  for (c = 0; c + 16 <= d; c += 16) {
    const float16 g = rs * (vload16(0, dyr + c) * vload16(0, w + c) - vload16(0, xr + c) * k);
    vstore16(acc ? vload16(0, dxr + c) + g : g, 0, dxr + c);
  }
  for (; c < d; ++c) ACC_STORE(dxr, c, rs * (dyr[c] * w[c] - xr[c] * k), acc);
}
