// Selective scan (Mamba's S6 recurrence), forward, backward and single step, as mamba_ssm's
// selective_scan_ref with delta_bias, delta_softplus and the z gate fused.
// Layouts (row-major, channels last):
//   u, delta, z, out: (B, L, E)     Bm, Cm: (B, L, N)     A: (E, N)     D, delta_bias: (E)
//   hs: (B, NC, E, N) the state at the start of each chunk of CHUNK steps (NC = ceil(L/CHUNK))
//   h_last: (B, E, N) the state after the last step (what a step-by-step decode continues from)
// Math per (b, e):  dt_t = softplus(delta[b,t,e] + delta_bias[e])  (or without softplus)
//   h_t[n] = exp(dt_t * A[e,n]) * h_{t-1}[n] + dt_t * Bm[b,t,n] * u[b,t,e]
//   y_t    = sum_n Cm[b,t,n] * h_t[n] + D[e] * u[b,t,e];   out = y_t * silu(z[b,t,e])
// One work-item per (b, e) walks the sequence; the N states live in registers.
// Kernels:
//   scan_fwd         out, hs, h_last
//   scan_bwd_chunk   one chunk (launched last chunk first): recomputes the chunk's states from
//                    hs into Hs, then walks it backwards; writes du, ddelta, dz, the chunk's
//                    per-channel dB / dC terms (dBc, dCc: (B, CHUNK, E, N)), and accumulates
//                    dA / dD / dbias per (b, e) in dA_p (B, E, N), dD_p, dbias_p (B, E)
//   scan_reduce_bc   dB / dC of one chunk: sums dBc, dCc over E in a fixed order
//   scan_step        one token: h (B, E, N) updated in place; u_t etc. are (B, E) / (B, N)
// Knobs: -DDSTATE=N (state size, compile-time so states stay in registers).
#ifndef DSTATE
#define DSTATE 16
#endif

inline float softplus_f(float x) { return fmax(x, 0.0f) + log1p(exp(-fabs(x))); }
inline float sigmoid_f(float x) { return 1.0f / (1.0f + exp(-x)); }

__kernel void scan_fwd(__global const float* u, ulong u_off, __global const float* delta, ulong delta_off,
                       __global const float* A, ulong A_off, __global const float* Bm, ulong Bm_off,
                       __global const float* Cm, ulong Cm_off, __global const float* D, ulong D_off,
                       __global const float* z, ulong z_off, __global const float* dbias, ulong dbias_off,
                       __global float* out, ulong out_off, __global float* hs, ulong hs_off,
                       __global float* h_last, ulong h_last_off,
                       int nb, int L, int E, int chunk, int has_z, int has_bias, int use_softplus) {
  u += u_off; delta += delta_off; A += A_off; Bm += Bm_off; Cm += Cm_off; D += D_off;
  z += z_off; dbias += dbias_off; out += out_off; hs += hs_off; h_last += h_last_off;
  const int gid = get_global_id(0);
  if (gid >= nb * E) return;
  const int b = gid / E, e = gid % E;
  const int nc = (L + chunk - 1) / chunk;
  float a[DSTATE], h[DSTATE];
  for (int n = 0; n < DSTATE; ++n) { a[n] = A[e * DSTATE + n]; h[n] = 0.0f; }
  const float Dv = D[e], bias = has_bias ? dbias[e] : 0.0f;
  for (int t = 0; t < L; ++t) {
    if (t % chunk == 0) {
      __global float* s = hs + (((long)b * nc + t / chunk) * E + e) * DSTATE;
      for (int n = 0; n < DSTATE; ++n) s[n] = h[n];
    }
    const long i = ((long)b * L + t) * E + e;
    const long bc = ((long)b * L + t) * DSTATE;
    float dt = delta[i] + bias;
    if (use_softplus) dt = softplus_f(dt);
    const float x = u[i];
    float y = 0.0f;
    for (int n = 0; n < DSTATE; ++n) {
      h[n] = exp(dt * a[n]) * h[n] + dt * Bm[bc + n] * x;
      y += Cm[bc + n] * h[n];
    }
    y += Dv * x;
    if (has_z) y *= z[i] * sigmoid_f(z[i]);
    out[i] = y;
  }
  __global float* hl = h_last + ((long)b * E + e) * DSTATE;
  for (int n = 0; n < DSTATE; ++n) hl[n] = h[n];
}

// Hs: scratch (CHUNK, DSTATE, nb*E), laid out so neighbouring work-items touch neighbouring floats.
// G: (B, E, N) gradient flowing into the chunk from later steps (already multiplied by exp(dt*A)).
__kernel void scan_bwd_chunk(__global const float* u, ulong u_off, __global const float* delta, ulong delta_off,
                             __global const float* A, ulong A_off, __global const float* Bm, ulong Bm_off,
                             __global const float* Cm, ulong Cm_off, __global const float* D, ulong D_off,
                             __global const float* z, ulong z_off, __global const float* dbias, ulong dbias_off,
                             __global const float* dout, ulong dout_off, __global const float* hs, ulong hs_off,
                             __global float* Hs, ulong Hs_off, __global float* G, ulong G_off,
                             __global float* du, ulong du_off, __global float* ddelta, ulong ddelta_off,
                             __global float* dz, ulong dz_off, __global float* dBc, ulong dBc_off,
                             __global float* dCc, ulong dCc_off, __global float* dA_p, ulong dA_p_off,
                             __global float* dD_p, ulong dD_p_off, __global float* dbias_p, ulong dbias_p_off,
                             int nb, int L, int E, int chunk, int c, int has_z, int has_bias,
                             int use_softplus, int acc_du, int acc_ddelta, int acc_dz) {
  u += u_off; delta += delta_off; A += A_off; Bm += Bm_off; Cm += Cm_off; D += D_off;
  z += z_off; dbias += dbias_off; dout += dout_off; hs += hs_off; Hs += Hs_off; G += G_off;
  du += du_off; ddelta += ddelta_off; dz += dz_off; dBc += dBc_off; dCc += dCc_off;
  dA_p += dA_p_off; dD_p += dD_p_off; dbias_p += dbias_p_off;
  const int gid = get_global_id(0);
  const int be = nb * E;
  if (gid >= be) return;
  const int b = gid / E, e = gid % E;
  const int nc = (L + chunk - 1) / chunk;
  const int t0 = c * chunk, t1 = min(L, t0 + chunk);
  const bool last_chunk = c == nc - 1;
  float a[DSTATE], h0[DSTATE], h[DSTATE], g[DSTATE], dA[DSTATE];
  const float Dv = D[e], bias = has_bias ? dbias[e] : 0.0f;
  __global const float* s = hs + (((long)b * nc + c) * E + e) * DSTATE;
  __global float* Gs = G + ((long)b * E + e) * DSTATE;
  __global float* dAs = dA_p + ((long)b * E + e) * DSTATE;
  for (int n = 0; n < DSTATE; ++n) {
    a[n] = A[e * DSTATE + n];
    h0[n] = s[n];
    h[n] = s[n];
    g[n] = last_chunk ? 0.0f : Gs[n];
    dA[n] = last_chunk ? 0.0f : dAs[n];
  }
  float dD = last_chunk ? 0.0f : dD_p[gid], dbias_acc = last_chunk ? 0.0f : dbias_p[gid];
  // 1. Recompute the chunk's states.
  for (int t = t0; t < t1; ++t) {
    const long i = ((long)b * L + t) * E + e;
    const long bc = ((long)b * L + t) * DSTATE;
    float dt = delta[i] + bias;
    if (use_softplus) dt = softplus_f(dt);
    const float x = u[i];
    for (int n = 0; n < DSTATE; ++n) {
      h[n] = exp(dt * a[n]) * h[n] + dt * Bm[bc + n] * x;
      Hs[((long)(t - t0) * DSTATE + n) * be + gid] = h[n];
    }
  }
  // 2. Walk it backwards.
  for (int t = t1 - 1; t >= t0; --t) {
    const int tl = t - t0;
    const long i = ((long)b * L + t) * E + e;
    const long bc = ((long)b * L + t) * DSTATE;
    const float raw = delta[i] + bias;
    const float dt = use_softplus ? softplus_f(raw) : raw;
    const float x = u[i];
    float y = Dv * x;
    for (int n = 0; n < DSTATE; ++n) y += Cm[bc + n] * Hs[((long)tl * DSTATE + n) * be + gid];
    float dy = dout[i];
    if (has_z) {
      const float zz = z[i], sg = sigmoid_f(zz);
      ACC_STORE(dz, i, dout[i] * y * sg * (1.0f + zz * (1.0f - sg)), acc_dz);
      dy *= zz * sg;
    }
    float dx = dy * Dv, ddt = 0.0f;
    dD += dy * x;
    __global float* dBrow = dBc + (((long)b * chunk + tl) * E + e) * DSTATE;
    __global float* dCrow = dCc + (((long)b * chunk + tl) * E + e) * DSTATE;
    for (int n = 0; n < DSTATE; ++n) {
      const float ht = Hs[((long)tl * DSTATE + n) * be + gid];
      const float hp = tl > 0 ? Hs[((long)(tl - 1) * DSTATE + n) * be + gid] : h0[n];
      const float an = exp(dt * a[n]);
      const float gn = g[n] + dy * Cm[bc + n];  // dL/dh_t
      dCrow[n] = dy * ht;
      dBrow[n] = gn * dt * x;
      dx += gn * dt * Bm[bc + n];
      ddt += gn * (a[n] * an * hp + Bm[bc + n] * x);
      dA[n] += gn * dt * an * hp;
      g[n] = gn * an;
    }
    ACC_STORE(du, i, dx, acc_du);
    const float draw = use_softplus ? ddt * sigmoid_f(raw) : ddt;
    ACC_STORE(ddelta, i, draw, acc_ddelta);
    dbias_acc += draw;
  }
  for (int n = 0; n < DSTATE; ++n) { Gs[n] = g[n]; dAs[n] = dA[n]; }
  dD_p[gid] = dD;
  dbias_p[gid] = dbias_acc;
}

// dB[b, t0 + tl, n] (+)= sum_e dBc[b, tl, e, n]; the same for dC. One work-item per (b, tl, n).
__kernel void scan_reduce_bc(__global const float* dBc, ulong dBc_off, __global const float* dCc, ulong dCc_off,
                             __global float* dB, ulong dB_off, __global float* dC, ulong dC_off,
                             int nb, int L, int E, int chunk, int c, int acc_b, int acc_c) {
  dBc += dBc_off; dCc += dCc_off; dB += dB_off; dC += dC_off;
  const int gid = get_global_id(0);
  const int t0 = c * chunk, len = min(L, t0 + chunk) - t0;
  if (gid >= nb * len * DSTATE) return;
  const int n = gid % DSTATE, tl = (gid / DSTATE) % len, b = gid / (DSTATE * len);
  float sb = 0.0f, sc = 0.0f;
  const long base = (((long)b * chunk + tl) * E) * DSTATE + n;
  for (int e = 0; e < E; ++e) {
    sb += dBc[base + (long)e * DSTATE];
    sc += dCc[base + (long)e * DSTATE];
  }
  const long o = ((long)b * L + t0 + tl) * DSTATE + n;
  ACC_STORE(dB, o, sb, acc_b);
  ACC_STORE(dC, o, sc, acc_c);
}

// One decoding step for every (b, e): h (B, E, N) in place; u_t, delta_t, z_t, out: (B, E);
// Bt, Ct: (B, N).
__kernel void scan_step(__global const float* u, ulong u_off, __global const float* delta, ulong delta_off,
                        __global const float* A, ulong A_off, __global const float* Bt, ulong Bt_off,
                        __global const float* Ct, ulong Ct_off, __global const float* D, ulong D_off,
                        __global const float* z, ulong z_off, __global const float* dbias, ulong dbias_off,
                        __global float* h, ulong h_off, __global float* out, ulong out_off,
                        int nb, int E, int has_z, int has_bias, int use_softplus) {
  u += u_off; delta += delta_off; A += A_off; Bt += Bt_off; Ct += Ct_off; D += D_off;
  z += z_off; dbias += dbias_off; h += h_off; out += out_off;
  const int gid = get_global_id(0);
  if (gid >= nb * E) return;
  const int b = gid / E, e = gid % E;
  float dt = delta[gid] + (has_bias ? dbias[e] : 0.0f);
  if (use_softplus) dt = softplus_f(dt);
  const float x = u[gid];
  float y = D[e] * x;
  __global float* hs = h + (long)gid * DSTATE;
  for (int n = 0; n < DSTATE; ++n) {
    const float hn = exp(dt * A[e * DSTATE + n]) * hs[n] + dt * Bt[b * DSTATE + n] * x;
    hs[n] = hn;
    y += Ct[b * DSTATE + n] * hn;
  }
  if (has_z) y *= z[gid] * sigmoid_f(z[gid]);
  out[gid] = y;
}
