// Mamba2's gated RMSNorm, the norm after the gate and per group of channels:
//   u = y * silu(z);   out = u * rsqrt(mean of u^2 over the group's channels + eps) * w
// Shapes: y, z, out, dout, dy, dz: (R, D) row-major, every row G groups of gs = D / G contiguous
// channels; w, dw: (D); rstd: (R, G), saved by the forward; partial: (K, D), K = ceil(R / chunk).
// Kernels:
//   gated_rms_norm_fwd         out, rstd                                a work-group per (row, group)
//   gated_rms_norm_bwd         dy, dz (+)=                              a work-group per (row, group)
//                              du = rstd * (dout*w - u * rstd^2 * mean(dout*w*u)),
//                              dy = du * silu(z), dz = du * y * silu'(z)
//   gated_rms_norm_dw_partial  partial[k, c] = sum over rows r of chunk k of dout * u * rstd,
//                              then dw[c] (+)= sum_k partial[k, c] in order (ops::colsum_final)
// The CPU mapping (ops/mapping.hpp) of the two per-(row, group) kernels: one work-item per
// (row, group) walks its channels 16 at a time (float16, sums folded by hsum16); launch R * G
// work-items, any work-group size (no barriers):
//   gated_rms_norm_fwd_row, gated_rms_norm_bwd_row   as gated_rms_norm_fwd, gated_rms_norm_bwd
// Knobs: LOCAL (-D, default 256): work-group size of the per-(row, group) kernels, a power of two;
// VEC (gated_rms_norm_dw_partial): columns per work-item.
// Deterministic: fixed-shape local trees, chunks summed in order. Launch the per-(row, group)
// kernels with exactly R * G groups: they have no early return ahead of group_sum's barriers.
#ifndef LOCAL
#define LOCAL 256
#endif

inline float sigmoid_g(float v) { return 1.0f / (1.0f + exp(-v)); }
inline float gate(float y, float z) { return y * z * sigmoid_g(z); }

__kernel __attribute__((reqd_work_group_size(LOCAL, 1, 1)))
void gated_rms_norm_fwd(__global const float* y, ulong y_off, __global const float* z, ulong z_off,
                        __global const float* w, ulong w_off, __global float* out, ulong out_off,
                        __global float* rstd, ulong rstd_off, long groups, long gs, float eps) {
  y += y_off; z += z_off; w += w_off; out += out_off; rstd += rstd_off;
  __local float s[LOCAL];
  const long rg = get_group_id(0), g = rg % groups, base = rg * gs;  // (r * G + g) * gs
  float v = 0.0f;
  for (long c = get_local_id(0); c < gs; c += LOCAL) {
    const float u = gate(y[base + c], z[base + c]);
    v += u * u;
  }
  const float rs = rsqrt(group_sum(s, v, LOCAL) / (float)gs + eps);
  for (long c = get_local_id(0); c < gs; c += LOCAL)
    out[base + c] = gate(y[base + c], z[base + c]) * rs * w[g * gs + c];
  if (get_local_id(0) == 0) rstd[rg] = rs;
}

__kernel __attribute__((reqd_work_group_size(LOCAL, 1, 1)))
void gated_rms_norm_bwd(__global const float* y, ulong y_off, __global const float* z, ulong z_off,
                        __global const float* w, ulong w_off, __global const float* rstd, ulong rstd_off,
                        __global const float* dout, ulong dout_off, __global float* dy, ulong dy_off,
                        __global float* dz, ulong dz_off, long groups, long gs, int acc_y, int acc_z) {
  y += y_off; z += z_off; w += w_off; rstd += rstd_off; dout += dout_off; dy += dy_off; dz += dz_off;
  __local float s[LOCAL];
  const long rg = get_group_id(0), g = rg % groups, base = rg * gs;
  __global const float* wg = w + g * gs;
  float v = 0.0f;
  for (long c = get_local_id(0); c < gs; c += LOCAL) v += dout[base + c] * wg[c] * gate(y[base + c], z[base + c]);
  const float rs = rstd[rg], k = rs * rs * group_sum(s, v, LOCAL) / (float)gs;
  for (long c = get_local_id(0); c < gs; c += LOCAL) {
    const long i = base + c;
    const float yv = y[i], zv = z[i], sg = sigmoid_g(zv);
    const float du = rs * (dout[i] * wg[c] - yv * zv * sg * k);
    ACC_STORE(dy, i, du * zv * sg, acc_y);
    ACC_STORE(dz, i, du * yv * sg * (1.0f + zv * (1.0f - sg)), acc_z);
  }
}

// Global (ceil(D / VEC), K): one work-item per (VEC columns, chunk of rows); the column sums of
// `partial` are ops::colsum_final's. VEC (ops/mapping.hpp): 16 in the CPU mapping, else 1.
#ifndef VEC
#define VEC 1
#endif
__kernel void gated_rms_norm_dw_partial(__global const float* y, ulong y_off, __global const float* z, ulong z_off,
                                        __global const float* rstd, ulong rstd_off, __global const float* dout,
                                        ulong dout_off, __global float* partial, ulong partial_off,
                                        long rows, long d, long gs, long chunk) {
  y += y_off; z += z_off; rstd += rstd_off; dout += dout_off; partial += partial_off;
  const long c0 = get_global_id(0) * VEC, k = get_global_id(1);
  if (c0 >= d || k * chunk >= rows) return;
  const long r0 = k * chunk, r1 = min(rows, (k + 1) * chunk), groups = d / gs;
#if VEC == 16
  if (c0 + 16 <= d && c0 / gs == (c0 + 15) / gs) {  // 16 columns of one group
    float16 v = 0.0f;
    for (long r = r0; r < r1; ++r) {
      const float16 zv = vload16(0, z + r * d + c0);
      v += vload16(0, dout + r * d + c0) * (vload16(0, y + r * d + c0) * zv / (1.0f + exp(-zv))) *
           rstd[r * groups + c0 / gs];
    }
    vstore16(v, 0, partial + k * d + c0);
    return;
  }
#endif
  for (long c = c0; c < min(c0 + VEC, d); ++c) {
    float v = 0.0f;
    for (long r = r0; r < r1; ++r)
      v += dout[r * d + c] * gate(y[r * d + c], z[r * d + c]) * rstd[r * groups + c / gs];
    partial[k * d + c] = v;
  }
}

// ---- CPU mapping: one work-item per (row, group) ------------------------------------------

inline float16 sigmoid16(float16 v) { return 1.0f / (1.0f + exp(-v)); }
// u = y * silu(z) for the first min(n, 16) channels at y and z.
inline float16 gate16(__global const float* y, __global const float* z, long n) {
  const float16 zv = vload16_part(z, n);
  return vload16_part(y, n) * zv * sigmoid16(zv);
}

__kernel void gated_rms_norm_fwd_row(__global const float* y, ulong y_off, __global const float* z, ulong z_off,
                                     __global const float* w, ulong w_off, __global float* out, ulong out_off,
                                     __global float* rstd, ulong rstd_off, long groups, long gs, long rows_groups,
                                     float eps) {
  y += y_off; z += z_off; w += w_off; out += out_off; rstd += rstd_off;
  const long rg = get_global_id(0);
  if (rg >= rows_groups) return;
  const long base = rg * gs;
  __global const float* wg = w + (rg % groups) * gs;
  float16 s16 = 0.0f;
  for (long c = 0; c < gs; c += 16) {
    const float16 u = gate16(y + base + c, z + base + c, gs - c);
    s16 += u * u;
  }
  const float rs = rsqrt(hsum16(s16) / (float)gs + eps);
  for (long c = 0; c < gs; c += 16)
    vstore16_part(gate16(y + base + c, z + base + c, gs - c) * rs * vload16_part(wg + c, gs - c), out + base + c,
                  gs - c);
  rstd[rg] = rs;
}

__kernel void gated_rms_norm_bwd_row(__global const float* y, ulong y_off, __global const float* z, ulong z_off,
                                     __global const float* w, ulong w_off, __global const float* rstd, ulong rstd_off,
                                     __global const float* dout, ulong dout_off, __global float* dy, ulong dy_off,
                                     __global float* dz, ulong dz_off, long groups, long gs, long rows_groups,
                                     int acc_y, int acc_z) {
  y += y_off; z += z_off; w += w_off; rstd += rstd_off; dout += dout_off; dy += dy_off; dz += dz_off;
  const long rg = get_global_id(0);
  if (rg >= rows_groups) return;
  const long base = rg * gs;
  __global const float* wg = w + (rg % groups) * gs;
  float16 s16 = 0.0f;
  for (long c = 0; c < gs; c += 16)
    s16 += vload16_part(dout + base + c, gs - c) * vload16_part(wg + c, gs - c) * gate16(y + base + c, z + base + c, gs - c);
  const float rs = rstd[rg], k = rs * rs * hsum16(s16) / (float)gs;
  for (long c = 0; c < gs; c += 16) {
    const long n = gs - c;
    const float16 yv = vload16_part(y + base + c, n), zv = vload16_part(z + base + c, n), sg = sigmoid16(zv);
    const float16 du = rs * (vload16_part(dout + base + c, n) * vload16_part(wg + c, n) - yv * zv * sg * k);
    float16 gy = du * zv * sg, gz = du * yv * sg * (1.0f + zv * (1.0f - sg));
    if (acc_y) gy += vload16_part(dy + base + c, n);
    if (acc_z) gz += vload16_part(dz + base + c, n);
    vstore16_part(gy, dy + base + c, n);
    vstore16_part(gz, dz + base + c, n);
  }
}
