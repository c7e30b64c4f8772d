// Selective scan, state-parallel mapping (for GPUs): the same math, layouts and outputs as
// cl/selective_scan.cl (read its header), but one work-item per (b, e, n) instead of one per
// (b, e): N times more work-items to hide memory latency. The sums over n (y, du, ddelta) and
// over the CPG channels of a work-group (dB, dC) go through local memory, in a fixed order.
// A work-group is CPG channels x DSTATE states, local id l = ch * DSTATE + n; E % CPG == 0, and
// the kernels are launched with exactly B * E * DSTATE work-items (no early returns: every
// work-item reaches every barrier).
// Kernels:
//   scan_fwd_states        out, hs (B, NC, N, E), h_last (B, E, N)
//   scan_bwd_chunk_states  one chunk, as scan_bwd_chunk; dBc, dCc: (B, chunk, N, E/CPG)
// Knobs: -DDSTATE=N, -DCPG=channels per work-group.
#ifndef DSTATE
#define DSTATE 16
#endif
#ifndef CPG
#define CPG 16
#endif
#define WG (CPG * DSTATE)

inline float softplus_f(float x) { return fmax(x, 0.0f) + log1p(exp(-fabs(x))); }
inline float sigmoid_f(float x) { return 1.0f / (1.0f + exp(-x)); }

// Sum of s[ch*DSTATE + 0 .. DSTATE-1] in order.
inline float sum_states(__local const float* s, int ch) {
  float v = 0.0f;
  for (int k = 0; k < DSTATE; ++k) v += s[ch * DSTATE + k];
  return v;
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void scan_fwd_states(__global const float* u, ulong u_off, __global const float* delta, ulong delta_off,
                     __global const float* A, ulong A_off, __global const float* Bm, ulong Bm_off,
                     __global const float* Cm, ulong Cm_off, __global const float* D, ulong D_off,
                     __global const float* z, ulong z_off, __global const float* dbias, ulong dbias_off,
                     __global float* out, ulong out_off, __global float* hs, ulong hs_off,
                     __global float* h_last, ulong h_last_off,
                     int nb, int L, int E, int chunk, int has_z, int has_bias, int use_softplus) {
  u += u_off; delta += delta_off; A += A_off; Bm += Bm_off; Cm += Cm_off; D += D_off;
  z += z_off; dbias += dbias_off; out += out_off; hs += hs_off; h_last += h_last_off;
  __local float part[WG];
  const int l = get_local_id(0), n = l % DSTATE, ch = l / DSTATE;
  const int groups = E / CPG, grp = get_group_id(0);
  const int b = grp / groups, e = (grp % groups) * CPG + ch;
  const int nc = (L + chunk - 1) / chunk;
  const float a = A[e * DSTATE + n], Dv = D[e], bias = has_bias ? dbias[e] : 0.0f;
  float h = 0.0f;
  for (int t = 0; t < L; ++t) {
    if (t % chunk == 0) hs[(((long)b * nc + t / chunk) * DSTATE + n) * E + e] = h;
    const long i = ((long)b * L + t) * E + e;
    const long bc = ((long)b * L + t) * DSTATE + n;
    float dt = delta[i] + bias;
    if (use_softplus) dt = softplus_f(dt);
    const float x = u[i];
    h = exp(dt * a) * h + dt * x * Bm[bc];
    part[l] = Cm[bc] * h;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (n == 0) {
      float y = Dv * x + sum_states(part, ch);
      if (has_z) y *= z[i] * sigmoid_f(z[i]);
      out[i] = y;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  h_last[((long)b * E + e) * DSTATE + n] = h;
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void scan_bwd_chunk_states(__global const float* u, ulong u_off, __global const float* delta, ulong delta_off,
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
  __local float s_y[WG], s_dx[WG], s_ddt[WG], s_dB[WG], s_dC[WG];
  const int l = get_local_id(0), n = l % DSTATE, ch = l / DSTATE;
  const int groups = E / CPG, grp = get_group_id(0), g_idx = grp % groups;
  const int b = grp / groups, e = g_idx * CPG + ch;
  const long be = (long)nb * E, col = (long)b * E + e;
  const int nc = (L + chunk - 1) / chunk;
  const int t0 = c * chunk, t1 = min(L, t0 + chunk);
  const bool last_chunk = c == nc - 1;
  const float a = A[e * DSTATE + n], Dv = D[e], bias = has_bias ? dbias[e] : 0.0f;
  const float h0 = hs[(((long)b * nc + c) * DSTATE + n) * E + e];
  float g = last_chunk ? 0.0f : G[(long)n * be + col];
  float dA = last_chunk ? 0.0f : dA_p[col * DSTATE + n];
  float dDv = last_chunk ? 0.0f : dD_p[col], dbias_acc = last_chunk ? 0.0f : dbias_p[col];
  // 1. Recompute the chunk's states into Hs (chunk, N, B·E).
  float h = h0;
  for (int t = t0; t < t1; ++t) {
    const long i = ((long)b * L + t) * E + e;
    float dt = delta[i] + bias;
    if (use_softplus) dt = softplus_f(dt);
    h = exp(dt * a) * h + dt * u[i] * Bm[((long)b * L + t) * DSTATE + n];
    Hs[((long)(t - t0) * DSTATE + n) * be + col] = h;
  }
  // 2. Walk it backwards (Hs entries were written by this same work-item: no barrier needed).
  for (int t = t1 - 1; t >= t0; --t) {
    const int tl = t - t0;
    const long i = ((long)b * L + t) * E + e;
    const long bc = ((long)b * L + t) * DSTATE + n;
    const float raw = delta[i] + bias;
    const float dt = use_softplus ? softplus_f(raw) : raw;
    const float x = u[i];
    const float ht = Hs[((long)tl * DSTATE + n) * be + col];
    const float hp = tl > 0 ? Hs[((long)(tl - 1) * DSTATE + n) * be + col] : h0;
    float gate = 1.0f, zz = 0.0f;
    if (has_z) {
      zz = z[i];
      gate = zz * sigmoid_f(zz);
    }
    const float dy = dout[i] * gate;
    const float an = exp(dt * a);
    const float gn = g + dy * Cm[bc];  // dL/dh_t
    s_y[l] = Cm[bc] * ht;
    s_dx[l] = gn * dt * Bm[bc];
    s_ddt[l] = gn * (a * an * hp + Bm[bc] * x);
    s_dB[l] = gn * dt * x;
    s_dC[l] = dy * ht;
    dA += gn * dt * an * hp;
    g = gn * an;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (n == 0) {  // per channel: sums over the states
      if (has_z) {
        const float y = Dv * x + sum_states(s_y, ch), sg = sigmoid_f(zz);
        ACC_STORE(dz, i, dout[i] * y * sg * (1.0f + zz * (1.0f - sg)), acc_dz);
      }
      ACC_STORE(du, i, dy * Dv + sum_states(s_dx, ch), acc_du);
      const float ddt = sum_states(s_ddt, ch);
      const float draw = use_softplus ? ddt * sigmoid_f(raw) : ddt;
      ACC_STORE(ddelta, i, draw, acc_ddelta);
      dbias_acc += draw;
      dDv += dy * x;
    }
    if (ch == 0) {  // per state: sums over the group's channels
      float sb = 0.0f, sc = 0.0f;
      for (int k = 0; k < CPG; ++k) {
        sb += s_dB[k * DSTATE + n];
        sc += s_dC[k * DSTATE + n];
      }
      const long o = (((long)b * chunk + tl) * DSTATE + n) * groups + g_idx;
      dBc[o] = sb;
      dCc[o] = sc;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  G[(long)n * be + col] = g;
  dA_p[col * DSTATE + n] = dA;
  if (n == 0) {
    dD_p[col] = dDv;
    dbias_p[col] = dbias_acc;
  }
}
