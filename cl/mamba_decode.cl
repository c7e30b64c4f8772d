// One decoding step of a Mamba1 mixer between x_proj and out_proj (ops::mamba_ssm_step; the
// projections are ops::decode_gemv, the conv step is fused into in_proj's: ops::decode_gemv_conv).
// Layouts (row-major):
//   xz: (B, 2E) in_proj's output, z = xz[:, E:]
//   xc, y: (B, E)  xc = silu(conv(x))   dbc: (B, R + 2N) x_proj's output [dt | B | C]   dt_w: (E, R)   dt_b: (E)
//   A: (E, N) = −exp(A_log)   D: (E)   h: (B, E, N) (updated in place)
// Kernel (a work-item per (b, e)):
//   mamba_ssm_step    Δ = softplus(dt_w[e] · dt + dt_b[e]);
//                     h[n] = exp(Δ · A[e, n]) · h[n] + Δ · B[n] · xc;  y = (Σ_n C[n] · h[n] + D[e] · xc) · silu(z)
// Knobs: -DDSTATE=N (state size: the N states stay in registers).
// Sizes arrive as long; the host checked that they fit in an int.
#ifndef DSTATE
#define DSTATE 16
#endif

inline float silu_f(float v) { return v / (1.0f + exp(-v)); }
inline float softplus_f(float v) { return fmax(v, 0.0f) + log1p(exp(-fabs(v))); }

__kernel void mamba_ssm_step(__global const float* xc, ulong xc_off, __global const float* dbc, ulong dbc_off,
                             __global const float* dt_w, ulong dt_w_off, __global const float* dt_b, ulong dt_b_off,
                             __global const float* A, ulong A_off, __global const float* D, ulong D_off,
                             __global const float* xz, ulong xz_off, __global float* h, ulong h_off,
                             __global float* y, ulong y_off, long nb_arg, long E_arg, long R_arg) {
  xc += xc_off; dbc += dbc_off; dt_w += dt_w_off; dt_b += dt_b_off; A += A_off; D += D_off;
  xz += xz_off; h += h_off; y += y_off;
  const int nb = nb_arg, E = E_arg, R = R_arg, S = R + 2 * DSTATE;
  const int gid = get_global_id(0);
  if (gid >= nb * E) return;
  const int b = gid / E, e = gid % E;
  __global const float* row = dbc + b * S;
  float dt = 0.0f;
  for (int r = 0; r < R; ++r) dt += dt_w[e * R + r] * row[r];
  dt = softplus_f(dt + dt_b[e]);
  const float x = xc[gid];
  float acc = D[e] * x;
  __global float* hs = h + (long)gid * DSTATE;
  for (int n = 0; n < DSTATE; ++n) {
    const float hn = exp(dt * A[e * DSTATE + n]) * hs[n] + dt * row[R + n] * x;
    hs[n] = hn;
    acc += row[R + DSTATE + n] * hn;
  }
  const float z = xz[b * 2 * E + E + e];
  y[gid] = acc * silu_f(z);
}
