// Selective scan (Mamba's S6 recurrence), forward, backward and single step, as mamba_ssm's
// selective_scan_ref with delta_bias, delta_softplus and the z gate fused.
// Layouts (row-major, channels last):
//   u, delta, z, out: (B, L, E)     Bm, Cm: (B, L, N)     A: (E, N)     D, delta_bias: (E)
//   hs: (B, NC, N, E) the state at the start of each chunk of `chunk` steps (NC = ceil(L/chunk))
//   h_last: (B, E, N) the state after the last step (what a step-by-step decode continues from)
// Math per (b, e):  dt_t = softplus(delta[b,t,e] + delta_bias[e])  (or without softplus)
//   h_t[n] = exp(dt_t * A[e,n]) * h_{t-1}[n] + dt_t * Bm[b,t,n] * u[b,t,e]
//   y_t    = sum_n Cm[b,t,n] * h_t[n] + D[e] * u[b,t,e];   out = y_t * silu(z[b,t,e])
// One work-item per (b, VEC consecutive channels) walks the sequence; the N states of its
// channels live in registers as VEC-wide vectors (explicit SIMD for CPUs; VEC = 1 on GPUs,
// where neighbouring work-items already make coalesced accesses).
// Kernels:
//   scan_fwd         out, hs, h_last
//   scan_bwd_chunk   one chunk (launched last chunk first): recomputes the chunk's states and
//                    decays exp(dt · A) from hs into Hs (B·E/VEC, len, 2, N, VEC) (len = the
//                    chunk's steps: each work-item's are contiguous, so they stay in its core's
//                    cache), then walks them backwards (no exp recomputed); writes du, ddelta, dz,
//                    the chunk's dB / dC terms summed over each work-item's lanes
//                    (dBc, dCc: (B, chunk, N, E/VEC)), and accumulates dA / dD / dbias per
//                    (b, e) in dA_p (B, E, N), dD_p, dbias_p (B, E); G (B, N, E) carries dL/dh
//                    from one chunk to the one before
//   scan_reduce_bc   dB / dC of one chunk: sums dBc, dCc over their `cols` columns (E/VEC here;
//                    E/CPG for the chunked mappings) in a fixed order
//   scan_step        one token: h (B, E, N) updated in place; u_t etc. are (B, E) / (B, N)
// Knobs: -DDSTATE=N (state size, compile-time so states stay in registers);
//        -DVEC=1|4|8|16 (channels per work-item; E must be a multiple).
// Sizes arrive as long (the `_arg` parameters); the host checked that they fit in an int, and
// the kernels narrow them at the top so that the loops compile as 32-bit code.
#ifndef DSTATE
#define DSTATE 16
#endif
#ifndef VEC
#define VEC 1
#endif

#if VEC == 1
typedef float vf;
#define VLOAD(p) (*(p))
#define VSTORE(v, p) (*(p) = (v))
#define HSUM(v) (v)
#elif VEC == 4
typedef float4 vf;
#define VLOAD(p) vload4(0, p)
#define VSTORE(v, p) vstore4(v, 0, p)
#define HSUM(v) (((v).s0 + (v).s1) + ((v).s2 + (v).s3))
#elif VEC == 8
typedef float8 vf;
#define VLOAD(p) vload8(0, p)
#define VSTORE(v, p) vstore8(v, 0, p)
#define HSUM(v) ((((v).s0 + (v).s1) + ((v).s2 + (v).s3)) + (((v).s4 + (v).s5) + ((v).s6 + (v).s7)))
#elif VEC == 16
typedef float16 vf;
#define VLOAD(p) vload16(0, p)
#define VSTORE(v, p) vstore16(v, 0, p)
#define HSUM(v) (HSUM8((v).lo) + HSUM8((v).hi))
#define HSUM8(v) ((((v).s0 + (v).s1) + ((v).s2 + (v).s3)) + (((v).s4 + (v).s5) + ((v).s6 + (v).s7)))
#endif

inline float softplus_f(float x) { return fmax(x, 0.0f) + log1p(exp(-fabs(x))); }
inline float sigmoid_f(float x) { return 1.0f / (1.0f + exp(-x)); }
inline vf softplus_v(vf x) { return fmax(x, (vf)0.0f) + log1p(exp(-fabs(x))); }
inline vf sigmoid_v(vf x) { return (vf)1.0f / ((vf)1.0f + exp(-x)); }

// A[e .. e+VEC-1, n] as a vector (A is (E, N): a strided gather, once per kernel).
inline vf load_a_column(__global const float* A, int e, int n) {
  float t[VEC];
  for (int j = 0; j < VEC; ++j) t[j] = A[(e + j) * DSTATE + n];
  return VLOAD(t);
}

__kernel void scan_fwd(__global const float* u, ulong u_off, __global const float* delta, ulong delta_off,
                       __global const float* A, ulong A_off, __global const float* Bm, ulong Bm_off,
                       __global const float* Cm, ulong Cm_off, __global const float* D, ulong D_off,
                       __global const float* z, ulong z_off, __global const float* dbias, ulong dbias_off,
                       __global float* out, ulong out_off, __global float* hs, ulong hs_off,
                       __global float* h_last, ulong h_last_off,
                       long nb_arg, long L_arg, long E_arg, long chunk_arg,
                       int has_z, int has_bias, int use_softplus) {
  const int nb = nb_arg, L = L_arg, E = E_arg, chunk = chunk_arg;  // fit: checked by the host
  u += u_off; delta += delta_off; A += A_off; Bm += Bm_off; Cm += Cm_off; D += D_off;
  z += z_off; dbias += dbias_off; out += out_off; hs += hs_off; h_last += h_last_off;
  const int gid = get_global_id(0), ev = E / VEC;
  if (gid >= nb * ev) return;
  const int b = gid / ev, e = (gid % ev) * VEC;
  const int nc = (L + chunk - 1) / chunk;
  vf a[DSTATE], h[DSTATE];
  for (int n = 0; n < DSTATE; ++n) { a[n] = load_a_column(A, e, n); h[n] = (vf)0.0f; }
  const vf Dv = VLOAD(D + e), bias = has_bias ? VLOAD(dbias + e) : (vf)0.0f;
  for (int t = 0; t < L; ++t) {
    if (t % chunk == 0) {
      __global float* s = hs + ((long)b * nc + t / chunk) * DSTATE * E + e;
      for (int n = 0; n < DSTATE; ++n) VSTORE(h[n], s + (long)n * E);
    }
    const long i = ((long)b * L + t) * E + e;
    const long bc = ((long)b * L + t) * DSTATE;
    vf dt = VLOAD(delta + i) + bias;
    if (use_softplus) dt = softplus_v(dt);
    const vf x = VLOAD(u + i), dtx = dt * x;
    vf y = Dv * x;
    for (int n = 0; n < DSTATE; ++n) {
      h[n] = exp(dt * a[n]) * h[n] + dtx * Bm[bc + n];
      y += Cm[bc + n] * h[n];
    }
    if (has_z) {
      const vf zz = VLOAD(z + i);
      y *= zz * sigmoid_v(zz);
    }
    VSTORE(y, out + i);
  }
  for (int n = 0; n < DSTATE; ++n) {
    float t[VEC];
    VSTORE(h[n], t);
    for (int j = 0; j < VEC; ++j) h_last[((long)b * E + e + j) * DSTATE + n] = t[j];
  }
}

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
                             long nb_arg, long L_arg, long E_arg, long chunk_arg, long c_arg,
                             int has_z, int has_bias,
                             int use_softplus, int acc_du, int acc_ddelta, int acc_dz) {
  const int nb = nb_arg, L = L_arg, E = E_arg, chunk = chunk_arg, c = c_arg;  // fit: checked by the host
  u += u_off; delta += delta_off; A += A_off; Bm += Bm_off; Cm += Cm_off; D += D_off;
  z += z_off; dbias += dbias_off; dout += dout_off; hs += hs_off; Hs += Hs_off; G += G_off;
  du += du_off; ddelta += ddelta_off; dz += dz_off; dBc += dBc_off; dCc += dCc_off;
  dA_p += dA_p_off; dD_p += dD_p_off; dbias_p += dbias_p_off;
  const int gid = get_global_id(0), ev = E / VEC;
  if (gid >= nb * ev) return;
  const int b = gid / ev, e = (gid % ev) * VEC;
  const long be = (long)nb * E, col = (long)b * E + e;  // this work-item's column in G
  const int nc = (L + chunk - 1) / chunk;
  const int t0 = c * chunk, t1 = min(L, t0 + chunk);
  const bool last_chunk = c == nc - 1;
  vf a[DSTATE], h0[DSTATE], g[DSTATE], dA[DSTATE];
  const vf Dv = VLOAD(D + e), bias = has_bias ? VLOAD(dbias + e) : (vf)0.0f;
  __global const float* s = hs + ((long)b * nc + c) * DSTATE * E + e;
  for (int n = 0; n < DSTATE; ++n) {
    a[n] = load_a_column(A, e, n);
    h0[n] = VLOAD(s + (long)n * E);
    g[n] = last_chunk ? (vf)0.0f : VLOAD(G + (long)n * be + col);
    if (last_chunk) {
      dA[n] = (vf)0.0f;
    } else {
      float t[VEC];
      for (int j = 0; j < VEC; ++j) t[j] = dA_p[(col + j) * DSTATE + n];
      dA[n] = VLOAD(t);
    }
  }
  __global float* H = Hs + (long)gid * (t1 - t0) * 2 * DSTATE * VEC;  // this work-item's (len, 2, N, VEC)
#define H_STATE(tl, n) (H + (((tl) * 2) * DSTATE + (n)) * VEC)
#define H_DECAY(tl, n) (H + (((tl) * 2 + 1) * DSTATE + (n)) * VEC)
  vf dDv = last_chunk ? (vf)0.0f : VLOAD(dD_p + col);
  vf dbias_acc = last_chunk ? (vf)0.0f : VLOAD(dbias_p + col);
  // 1. Recompute the chunk's states into this work-item's part of Hs.
  {
    vf h[DSTATE];
    for (int n = 0; n < DSTATE; ++n) h[n] = h0[n];
    for (int t = t0; t < t1; ++t) {
      const long i = ((long)b * L + t) * E + e;
      const long bc = ((long)b * L + t) * DSTATE;
      vf dt = VLOAD(delta + i) + bias;
      if (use_softplus) dt = softplus_v(dt);
      const vf dtx = dt * VLOAD(u + i);
      for (int n = 0; n < DSTATE; ++n) {
        const vf an = exp(dt * a[n]);
        h[n] = an * h[n] + dtx * Bm[bc + n];
        VSTORE(h[n], H_STATE(t - t0, n));
        VSTORE(an, H_DECAY(t - t0, n));
      }
    }
  }
  // 2. Walk it backwards.
  const int ev_idx = gid % ev;
  for (int t = t1 - 1; t >= t0; --t) {
    const int tl = t - t0;
    const long i = ((long)b * L + t) * E + e;
    const long bc = ((long)b * L + t) * DSTATE;
    const vf raw = VLOAD(delta + i) + bias;
    const vf dt = use_softplus ? softplus_v(raw) : raw;
    const vf x = VLOAD(u + i);
    vf y = Dv * x;
    for (int n = 0; n < DSTATE; ++n) y += Cm[bc + n] * VLOAD(H_STATE(tl, n));
    vf dy = VLOAD(dout + i);
    if (has_z) {
      const vf zz = VLOAD(z + i), sg = sigmoid_v(zz);
      vf dzv = dy * y * sg * ((vf)1.0f + zz * ((vf)1.0f - sg));
      if (acc_dz) dzv += VLOAD(dz + i);
      VSTORE(dzv, dz + i);
      dy *= zz * sg;
    }
    vf dx = dy * Dv, ddt = (vf)0.0f;
    dDv += dy * x;
    const long row = ((long)b * chunk + tl) * DSTATE;  // dBc / dCc row (B, chunk, N, E/VEC)
    for (int n = 0; n < DSTATE; ++n) {
      const vf ht = VLOAD(H_STATE(tl, n));
      const vf hp = tl > 0 ? VLOAD(H_STATE(tl - 1, n)) : h0[n];
      const vf an = VLOAD(H_DECAY(tl, n));
      const vf gn = g[n] + dy * Cm[bc + n];  // dL/dh_t
      dCc[(row + n) * ev + ev_idx] = HSUM(dy * ht);
      dBc[(row + n) * ev + ev_idx] = HSUM(gn * dt * x);
      dx += gn * dt * Bm[bc + n];
      ddt += gn * (a[n] * an * hp + Bm[bc + n] * x);
      dA[n] += gn * dt * an * hp;
      g[n] = gn * an;
    }
    if (acc_du) dx += VLOAD(du + i);
    VSTORE(dx, du + i);
    vf draw = use_softplus ? ddt * sigmoid_v(raw) : ddt;
    dbias_acc += draw;
    if (acc_ddelta) draw += VLOAD(ddelta + i);
    VSTORE(draw, ddelta + i);
  }
  for (int n = 0; n < DSTATE; ++n) {
    VSTORE(g[n], G + (long)n * be + col);
    float t[VEC];
    VSTORE(dA[n], t);
    for (int j = 0; j < VEC; ++j) dA_p[(col + j) * DSTATE + n] = t[j];
  }
  VSTORE(dDv, dD_p + col);
  VSTORE(dbias_acc, dbias_p + col);
}

#undef H_STATE
#undef H_DECAY

// dB[b, t0 + tl, n] (+)= sum_k dBc[b, tl, n, k] over k < cols; the same for dC.
// One work-item per (b, tl, n).
__kernel void scan_reduce_bc(__global const float* dBc, ulong dBc_off, __global const float* dCc, ulong dCc_off,
                             __global float* dB, ulong dB_off, __global float* dC, ulong dC_off,
                             long nb_arg, long L_arg, long cols_arg, long chunk_arg, long c_arg,
                             int acc_b, int acc_c) {
  const int nb = nb_arg, L = L_arg, ev = cols_arg, chunk = chunk_arg, c = c_arg;  // fit: checked by the host
  dBc += dBc_off; dCc += dCc_off; dB += dB_off; dC += dC_off;
  const int gid = get_global_id(0);
  const int t0 = c * chunk, len = min(L, t0 + chunk) - t0;
  if (gid >= nb * len * DSTATE) return;
  const int n = gid % DSTATE, tl = (gid / DSTATE) % len, b = gid / (DSTATE * len);
  float sb = 0.0f, sc = 0.0f;
  const long base = (((long)b * chunk + tl) * DSTATE + n) * ev;
  for (int k = 0; k < ev; ++k) {
    sb += dBc[base + k];
    sc += dCc[base + k];
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
                        long nb_arg, long E_arg, int has_z, int has_bias, int use_softplus) {
  const int nb = nb_arg, E = E_arg;  // fit: checked by the host
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
