// One decoding step of a Mamba1 mixer between x_proj and out_proj (ops::mamba_ssm_step; in_proj
// with the conv step is ops::decode_gemv_conv, x_proj and out_proj ops::decode_gemv).
// Layouts (row-major):
//   xz: (B, 2E) in_proj's output, z = xz[:, E:]   xc, y: (B, E)  xc = silu(conv(x))
//   dbc: (B, S) x_proj's output [dt | B | C], S = R + 2N
//   dt_w: (E, R)   dt_b: (E)   A: (E, N) = −exp(A_log)   D: (E)   h: (B, E, N) (updated in place)
// Per channel e of row b:
//   Δ = softplus(dt_w[e] · dt + dt_b[e]);
//   h[n] = exp(Δ · A[e, n]) · h[n] + Δ · B[n] · xc;  y = (Σ_n C[n] · h[n] + D[e] · xc) · silu(z)
// Kernels (the same results up to rounding order; each deterministic):
//   mamba_ssm_step      gpu mapping: a group of LWG work-items per (b, block of LWG channels), a
//                       work-item per channel; the group first copies dbc's row to local memory.
//   mamba_ssm_step_cpu  cpu mapping: a work-item per (b, block of 16 channels), no barriers:
//                       the dt dots over R in float16 chunks, the states in float16 blocks over N
//                       (the last block of N % 16 padded with 0), softplus, the D skip and the
//                       SiLU(z) gate on float16 vectors over the block's channels, so that PoCL
//                       keeps exp / log1p as vector math (its scalar libm calls are slow).
// Knobs: -DDSTATE=N (gpu: the N states stay in registers), -DSDIM=S, -DLWG=2^p (gpu).
// Sizes arrive as long; the host checked that they fit in an int. No early return before a barrier.
#ifndef DSTATE
#define DSTATE 16
#endif
#ifndef SDIM
#define SDIM (1 + 2 * DSTATE)
#endif
#ifndef LWG
#define LWG 64
#endif

inline float silu_f(float v) { return v / (1.0f + exp(-v)); }
inline float softplus_f(float v) { return fmax(v, 0.0f) + log1p(exp(-fabs(v))); }

__kernel void mamba_ssm_step(__global const float* xc, ulong xc_off, __global const float* dbc, ulong dbc_off,
                             __global const float* dt_w, ulong dt_w_off, __global const float* dt_b, ulong dt_b_off,
                             __global const float* A, ulong A_off, __global const float* D, ulong D_off,
                             __global const float* xz, ulong xz_off, __global float* h, ulong h_off,
                             __global float* y, ulong y_off, long E_arg) {
  xc += xc_off; dbc += dbc_off; dt_w += dt_w_off; dt_b += dt_b_off; A += A_off; D += D_off;
  xz += xz_off; h += h_off; y += y_off;
  const int E = E_arg, R = SDIM - 2 * DSTATE;
  const int nblk = (E + LWG - 1) / LWG, lid = get_local_id(0);
  const int b = get_group_id(0) / nblk, e = (get_group_id(0) % nblk) * LWG + lid;
  __local float row[SDIM];
  for (int s = lid; s < SDIM; s += LWG) row[s] = dbc[(long)b * SDIM + s];
  barrier(CLK_LOCAL_MEM_FENCE);
  if (e >= E) return;  // after the barrier
  const long be = (long)b * E + e;
  float dt = 0.0f;
  for (int r = 0; r < R; ++r) dt += dt_w[e * R + r] * row[r];
  dt = softplus_f(dt + dt_b[e]);
  const float x = xc[be];
  float acc = D[e] * x;
  __global float* hs = h + be * DSTATE;
  for (int n = 0; n < DSTATE; ++n) {
    const float hn = exp(dt * A[e * DSTATE + n]) * hs[n] + dt * row[R + n] * x;
    hs[n] = hn;
    acc += row[R + DSTATE + n] * hn;
  }
  const float z = xz[(long)b * 2 * E + E + e];
  y[be] = acc * silu_f(z);
}

// w · v over R terms: float16 chunks, the lanes folded in a fixed tree, then the R % 16 rest.
inline float dot_r(__global const float* w, __global const float* v, int R) {
  float16 a = (float16)0.0f;
  const int R16 = R / 16;
  for (int c = 0; c < R16; ++c) a = fma(vload16(c, w), vload16(c, v), a);
  float s = hsum16(a);
  for (int r = 16 * R16; r < R; ++r) s += w[r] * v[r];
  return s;
}

// The state update of one channel (step dt, input x, its N states hs and A's row Ae) with the
// row's B and C (Bv, Cv); returns Σ_n C[n] · h[n].
inline float state_step(float dt, float x, __global float* hs, __global const float* Ae, __global const float* Bv,
                        __global const float* Cv) {
  float16 acc = (float16)0.0f;
  for (int k = 0; k < DSTATE / 16; ++k) {
    const float16 hn = exp(dt * vload16(k, Ae)) * vload16(k, hs) + dt * vload16(k, Bv) * x;
    vstore16(hn, k, hs);
    acc = fma(vload16(k, Cv), hn, acc);
  }
#if DSTATE % 16
  // The last DSTATE % 16 states: padded lanes have A = h = B = C = 0, so hn = 0 there.
  const int n0 = DSTATE / 16 * 16, m = DSTATE % 16;
  const float16 hn = exp(dt * vload16_part(Ae + n0, m)) * vload16_part(hs + n0, m) + dt * vload16_part(Bv + n0, m) * x;
  vstore16_part(hn, hs + n0, m);
  acc = fma(vload16_part(Cv + n0, m), hn, acc);
#endif
  return hsum16(acc);
}

__kernel void mamba_ssm_step_cpu(__global const float* xc, ulong xc_off, __global const float* dbc, ulong dbc_off,
                                 __global const float* dt_w, ulong dt_w_off, __global const float* dt_b,
                                 ulong dt_b_off, __global const float* A, ulong A_off, __global const float* D,
                                 ulong D_off, __global const float* xz, ulong xz_off, __global float* h, ulong h_off,
                                 __global float* y, ulong y_off, long E_arg, long B_arg) {
  xc += xc_off; dbc += dbc_off; dt_w += dt_w_off; dt_b += dt_b_off; A += A_off; D += D_off;
  xz += xz_off; h += h_off; y += y_off;
  const int E = E_arg, R = SDIM - 2 * DSTATE, nblk = (E + 15) / 16;
  const int g = get_global_id(0);
  if (g >= B_arg * nblk) return;
  const int b = g / nblk, e0 = (g % nblk) * 16, nc = min(16, E - e0);
  __global const float* row = dbc + (long)b * SDIM;
  float dt[16], acc[16];
  for (int c = 0; c < 16; ++c) dt[c] = c < nc ? dot_r(dt_w + (long)(e0 + c) * R, row, R) : 0.0f;
  const float16 d = vload16(0, dt) + vload16_part(dt_b + e0, nc);
  vstore16(fmax(d, 0.0f) + log1p(exp(-fabs(d))), 0, dt);
  const float16 x = vload16_part(xc + (long)b * E + e0, nc);
  float xs[16];
  vstore16(x, 0, xs);
  for (int c = 0; c < 16; ++c)
    acc[c] = c < nc ? state_step(dt[c], xs[c], h + ((long)b * E + e0 + c) * DSTATE, A + (long)(e0 + c) * DSTATE,
                                 row + R, row + R + DSTATE)
                    : 0.0f;
  const float16 z = vload16_part(xz + (long)b * 2 * E + E + e0, nc);
  vstore16_part((vload16(0, acc) + vload16_part(D + e0, nc) * x) * (z / (1.0f + exp(-z))), y + (long)b * E + e0, nc);
}
