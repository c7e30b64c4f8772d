// Selective scan, state- and chunk-parallel mapping (for GPUs): the same math and outputs as
// cl/selective_scan.cl (read its header), with one work-item per (b, e, n, chunk). Both
// recurrences are linear in what they carry, so a chunk only needs the carry entering it:
//   forward   h entering chunk c+1 = P_c · (h entering c) + S_c       (per (b, e, n))
//   backward  g entering chunk c-1 = P_c · (g entering c) + Q_c
// where P_c = prod over the chunk of exp(dt_t · A) and S_c, Q_c are the chunk's own results
// from a zero carry. Summaries run every chunk at once, a short sequential pass over the NC
// chunks combines them (cl/selective_scan_carry.cl), then every chunk runs again from its true carry.
// Sums over n (y, du, ddelta) and over the CPG channels of a work-group (dB, dC) go through
// local memory in a fixed order. A work-group is CPG channels x DSTATE states of one (b, chunk),
// local id l = ch * DSTATE + n; E % CPG == 0; launched with exactly B * E * DSTATE * NC work-items
// (no early returns: every work-item reaches every barrier). Inputs of the next step are loaded
// before the current step's barriers (software pipelining) to hide memory latency.
// Layouts: as cl/selective_scan.cl; per-chunk arrays (B, NC, N, E): hs (state entering each
// chunk), P, S or Q, Gin (carry entering each chunk from later ones).
// Kernels:
//   scan_summary_fwd   P, S of every chunk
//   scan_chunks_fwd    out, every chunk from hs
//   scan_summary_bwd   P, Q of every chunk
//   scan_chunks_bwd    `flight` chunks from chunk c0 on: recompute states into Hs
//                      (flight, chunk, B·E, N), walk backwards from Gin (a work-group's
//                      states of one step are contiguous: coalesced writes and reads); writes du, ddelta, dz,
//                      dBc, dCc (B, L, N, E/CPG) summed over the group's channels, and per-chunk
//                      partials dA_p (NC, B, E, N), dD_p, dbias_p (NC, B, E)
// SHFL 1 (NVIDIA only: inline PTX shfl.sync; DSTATE a power of two <= 16, WG a multiple of 32):
// the sums over a channel's states are butterflies across its DSTATE neighbouring lanes (every lane
// gets the same sum), so scan_chunks_fwd needs no local memory and no barrier, and
// scan_chunks_bwd sums over the group's channels from one partial per warp (its channels first
// combined by shuffles): 2 barriers per step remain, the 16-long serial sums are gone. The sums
// run in another fixed order than with SHFL 0 (both deterministic).
// Knobs: -DDSTATE=N, -DCPG=channels per work-group, -DSHFL.
// Sizes arrive as long (the `_arg` parameters); the host checked that they fit in an int, and
// the kernels narrow them at the top so that the loops compile as 32-bit code.
#ifndef DSTATE
#define DSTATE 16
#endif
#ifndef CPG
#define CPG 16
#endif
#ifndef SHFL
#define SHFL 0
#endif
#define WG (CPG * DSTATE)

#if SHFL  // shfl_xor: cl/common.cl
// The sum of v over the DSTATE lanes of this work-item's channel, in every one of them.
inline float channel_sum(float v) {
  for (int offset = DSTATE / 2; offset > 0; offset /= 2) v += shfl_xor(v, offset);
  return v;
}
// The sum of v over the channels of this work-item's warp, for its state (lanes n, n + DSTATE, ...).
inline float warp_channels_sum(float v) {
  for (int offset = 16; offset >= DSTATE; offset /= 2) v += shfl_xor(v, offset);
  return v;
}
#endif

inline float softplus_f(float x) { return fmax(x, 0.0f) + log1p(exp(-fabs(x))); }
inline float sigmoid_f(float x) { return 1.0f / (1.0f + exp(-x)); }

// Sum of s[ch*DSTATE + 0 .. DSTATE-1] in order.
inline float sum_states(__local const float* s, int ch) {
  float v = 0.0f;
  for (int k = 0; k < DSTATE; ++k) v += s[ch * DSTATE + k];
  return v;
}

inline float step_size(float raw, int use_softplus) { return use_softplus ? softplus_f(raw) : raw; }

__kernel void scan_summary_fwd(__global const float* u, ulong u_off, __global const float* delta, ulong delta_off,
                               __global const float* A, ulong A_off, __global const float* Bm, ulong Bm_off,
                               __global const float* dbias, ulong dbias_off,
                               __global float* P, ulong P_off, __global float* S, ulong S_off,
                               long nb_arg, long L_arg, long E_arg, long chunk_arg,
                               int has_bias, int use_softplus) {
  const int nb = nb_arg, L = L_arg, E = E_arg, chunk = chunk_arg;  // fit: checked by the host
  u += u_off; delta += delta_off; A += A_off; Bm += Bm_off; dbias += dbias_off; P += P_off; S += S_off;
  const int nc = (L + chunk - 1) / chunk;
  const long gid = get_global_id(0);
  if (gid >= (long)nb * nc * E * DSTATE) return;  // no barriers in this kernel
  const int n = gid % DSTATE, e = (gid / DSTATE) % E;
  const int c = (gid / ((long)DSTATE * E)) % nc, b = gid / ((long)DSTATE * E * nc);
  const int t0 = c * chunk, t1 = min(L, t0 + chunk);
  const float a = A[e * DSTATE + n], bias = has_bias ? dbias[e] : 0.0f;
  float h = 0.0f, p = 1.0f;
  for (int t = t0; t < t1; ++t) {
    const long i = ((long)b * L + t) * E + e;
    const float dt = step_size(delta[i] + bias, use_softplus);
    const float an = exp(dt * a);
    h = an * h + dt * u[i] * Bm[((long)b * L + t) * DSTATE + n];
    p *= an;
  }
  const long o = (((long)b * nc + c) * DSTATE + n) * E + e;
  P[o] = p;
  S[o] = h;
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void scan_chunks_fwd(__global const float* u, ulong u_off, __global const float* delta, ulong delta_off,
                     __global const float* A, ulong A_off, __global const float* Bm, ulong Bm_off,
                     __global const float* Cm, ulong Cm_off, __global const float* D, ulong D_off,
                     __global const float* z, ulong z_off, __global const float* dbias, ulong dbias_off,
                     __global const float* hs, ulong hs_off, __global float* out, ulong out_off,
                     long nb_arg, long L_arg, long E_arg, long chunk_arg,
                     int has_z, int has_bias, int use_softplus) {
  const int nb = nb_arg, L = L_arg, E = E_arg, chunk = chunk_arg;  // fit: checked by the host
  u += u_off; delta += delta_off; A += A_off; Bm += Bm_off; Cm += Cm_off; D += D_off;
  z += z_off; dbias += dbias_off; hs += hs_off; out += out_off;
#if !SHFL
  __local float part[WG];
#endif
  const int l = get_local_id(0), n = l % DSTATE, ch = l / DSTATE;
  const int groups = E / CPG, nc = (L + chunk - 1) / chunk, grp = get_group_id(0);
  const int e = (grp % groups) * CPG + ch, c = (grp / groups) % nc, b = grp / (groups * nc);
  const int t0 = c * chunk, t1 = min(L, t0 + chunk);
  const float a = A[e * DSTATE + n], Dv = D[e], bias = has_bias ? dbias[e] : 0.0f;
  float h = hs[(((long)b * nc + c) * DSTATE + n) * E + e];
  long i = ((long)b * L + t0) * E + e, bc = ((long)b * L + t0) * DSTATE + n;
  float nd = delta[i], nx = u[i], nB = Bm[bc], nC = Cm[bc], nz = has_z ? z[i] : 0.0f;
  for (int t = t0; t < t1; ++t) {
    const float d_t = nd, x = nx, B_t = nB, C_t = nC, z_t = nz;
    const long io = i;
    if (t + 1 < t1) {
      i += E;
      bc += DSTATE;
      nd = delta[i], nx = u[i], nB = Bm[bc], nC = Cm[bc];
      if (has_z) nz = z[i];
    }
    const float dt = step_size(d_t + bias, use_softplus);
    h = exp(dt * a) * h + dt * x * B_t;
#if SHFL
    const float ch_y = channel_sum(C_t * h);
#else
    part[l] = C_t * h;
    barrier(CLK_LOCAL_MEM_FENCE);
    const float ch_y = n == 0 ? sum_states(part, ch) : 0.0f;
#endif
    if (n == 0) {
      float y = Dv * x + ch_y;
      if (has_z) y *= z_t * sigmoid_f(z_t);
      out[io] = y;
    }
#if !SHFL
    barrier(CLK_LOCAL_MEM_FENCE);
#endif
  }
}

// Q_c: the carry a chunk passes to the one before it when nothing enters it from later ones.
__kernel void scan_summary_bwd(__global const float* delta, ulong delta_off, __global const float* A, ulong A_off,
                               __global const float* Cm, ulong Cm_off, __global const float* z, ulong z_off,
                               __global const float* dbias, ulong dbias_off, __global const float* dout, ulong dout_off,
                               __global float* P, ulong P_off, __global float* Q, ulong Q_off,
                               long nb_arg, long L_arg, long E_arg, long chunk_arg,
                               int has_z, int has_bias, int use_softplus) {
  const int nb = nb_arg, L = L_arg, E = E_arg, chunk = chunk_arg;  // fit: checked by the host
  delta += delta_off; A += A_off; Cm += Cm_off; z += z_off; dbias += dbias_off; dout += dout_off;
  P += P_off; Q += Q_off;
  const int nc = (L + chunk - 1) / chunk;
  const long gid = get_global_id(0);
  if (gid >= (long)nb * nc * E * DSTATE) return;  // no barriers in this kernel
  const int n = gid % DSTATE, e = (gid / DSTATE) % E;
  const int c = (gid / ((long)DSTATE * E)) % nc, b = gid / ((long)DSTATE * E * nc);
  const int t0 = c * chunk, t1 = min(L, t0 + chunk);
  const float a = A[e * DSTATE + n], bias = has_bias ? dbias[e] : 0.0f;
  float g = 0.0f, p = 1.0f;
  for (int t = t1 - 1; t >= t0; --t) {
    const long i = ((long)b * L + t) * E + e;
    const float dt = step_size(delta[i] + bias, use_softplus);
    const float an = exp(dt * a);
    const float dy = has_z ? dout[i] * z[i] * sigmoid_f(z[i]) : dout[i];
    g = (g + dy * Cm[((long)b * L + t) * DSTATE + n]) * an;
    p *= an;
  }
  const long o = (((long)b * nc + c) * DSTATE + n) * E + e;
  P[o] = p;
  Q[o] = g;
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void scan_chunks_bwd(__global const float* u, ulong u_off, __global const float* delta, ulong delta_off,
                     __global const float* A, ulong A_off, __global const float* Bm, ulong Bm_off,
                     __global const float* Cm, ulong Cm_off, __global const float* D, ulong D_off,
                     __global const float* z, ulong z_off, __global const float* dbias, ulong dbias_off,
                     __global const float* dout, ulong dout_off, __global const float* hs, ulong hs_off,
                     __global const float* Gin, ulong Gin_off, __global float* Hs, ulong Hs_off,
                     __global float* du, ulong du_off, __global float* ddelta, ulong ddelta_off,
                     __global float* dz, ulong dz_off, __global float* dBc, ulong dBc_off,
                     __global float* dCc, ulong dCc_off, __global float* dA_p, ulong dA_p_off,
                     __global float* dD_p, ulong dD_p_off, __global float* dbias_p, ulong dbias_p_off,
                     long nb_arg, long L_arg, long E_arg, long chunk_arg, long c0_arg, long flight_arg,
                     int has_z, int has_bias, int use_softplus, int acc_du, int acc_ddelta, int acc_dz) {
  // fit: checked by the host
  const int nb = nb_arg, L = L_arg, E = E_arg, chunk = chunk_arg, c0 = c0_arg, flight = flight_arg;
  u += u_off; delta += delta_off; A += A_off; Bm += Bm_off; Cm += Cm_off; D += D_off;
  z += z_off; dbias += dbias_off; dout += dout_off; hs += hs_off; Gin += Gin_off; Hs += Hs_off;
  du += du_off; ddelta += ddelta_off; dz += dz_off; dBc += dBc_off; dCc += dCc_off;
  dA_p += dA_p_off; dD_p += dD_p_off; dbias_p += dbias_p_off;
#if SHFL
  __local float s_dB[WG / 32 * DSTATE], s_dC[WG / 32 * DSTATE];  // one partial per warp and state
#else
  __local float s_y[WG], s_dx[WG], s_ddt[WG], s_dB[WG], s_dC[WG];
#endif
  const int l = get_local_id(0), n = l % DSTATE, ch = l / DSTATE;
  const int groups = E / CPG, nc = (L + chunk - 1) / chunk, grp = get_group_id(0);
  const int g_idx = grp % groups, slot = (grp / groups) % flight, b = grp / (groups * flight);
  const int e = g_idx * CPG + ch, c = c0 + slot;
  const long be = (long)nb * E, col = (long)b * E + e;
  // In the last launch, slots past the final chunk are idle; a whole group shares its slot,
  // so its work-items skip the loops (and their barriers) together.
  const bool active = c < nc;
  const int t0 = c * chunk, t1 = active ? min(L, t0 + chunk) : t0;
  const float a = A[e * DSTATE + n], Dv = D[e], bias = has_bias ? dbias[e] : 0.0f;
  const long ci = active ? (((long)b * nc + c) * DSTATE + n) * E + e : 0;
  const float h0 = active ? hs[ci] : 0.0f;
  float g = active ? Gin[ci] : 0.0f;
  float dA = 0.0f, dDv = 0.0f, dbias_acc = 0.0f;
  __global float* H = Hs + ((long)slot * chunk * be + col) * DSTATE + n;  // + step * be * DSTATE
  const long h_step = be * DSTATE;
  // 1. Recompute the chunk's states into this slot of Hs (chunk, B·E, N).
  float h = h0;
  for (int t = t0; t < t1; ++t) {
    const long i = ((long)b * L + t) * E + e;
    const float dt = step_size(delta[i] + bias, use_softplus);
    h = exp(dt * a) * h + dt * u[i] * Bm[((long)b * L + t) * DSTATE + n];
    H[(t - t0) * h_step] = h;
  }
  // 2. Walk it backwards (H entries were written by this same work-item: no barrier needed).
  long i = ((long)b * L + max(t1 - 1, 0)) * E + e, bc = ((long)b * L + max(t1 - 1, 0)) * DSTATE + n;
  float nd = 0.0f, nx = 0.0f, ndo = 0.0f, nB = 0.0f, nC = 0.0f, nz = 0.0f;
  if (active) {
    nd = delta[i], nx = u[i], ndo = dout[i], nB = Bm[bc], nC = Cm[bc];
    if (has_z) nz = z[i];
  }
  for (int t = t1 - 1; t >= t0; --t) {
    const int tl = t - t0;
    const long io = i;
    const float raw = nd + bias, x = nx, dout_t = ndo, B_t = nB, C_t = nC, zz = nz;
    if (t > t0) {
      i -= E;
      bc -= DSTATE;
      nd = delta[i], nx = u[i], ndo = dout[i], nB = Bm[bc], nC = Cm[bc];
      if (has_z) nz = z[i];
    }
    const float dt = step_size(raw, use_softplus);
    const float ht = H[tl * h_step];
    const float hp = tl > 0 ? H[(tl - 1) * h_step] : h0;
    const float dy = has_z ? dout_t * zz * sigmoid_f(zz) : dout_t;
    const float an = exp(dt * a);
    const float gn = g + dy * C_t;  // dL/dh_t
#if SHFL
    // Per channel: sums over the states by shuffles. Per state: the warp's channels combined,
    // one partial per warp into local memory (summed below).
    const float sum_y = has_z ? channel_sum(C_t * ht) : 0.0f;
    const float sum_dx = channel_sum(gn * dt * B_t), sum_ddt = channel_sum(gn * (a * an * hp + B_t * x));
    const float warp_dB = warp_channels_sum(gn * dt * x), warp_dC = warp_channels_sum(dy * ht);
    if (l % 32 < DSTATE) s_dB[l / 32 * DSTATE + n] = warp_dB, s_dC[l / 32 * DSTATE + n] = warp_dC;
#else
    s_y[l] = C_t * ht;
    s_dx[l] = gn * dt * B_t;
    s_ddt[l] = gn * (a * an * hp + B_t * x);
    s_dB[l] = gn * dt * x;
    s_dC[l] = dy * ht;
#endif
    dA += gn * dt * an * hp;
    g = gn * an;
    barrier(CLK_LOCAL_MEM_FENCE);
#if !SHFL
    const float sum_y = n == 0 && has_z ? sum_states(s_y, ch) : 0.0f;
    const float sum_dx = n == 0 ? sum_states(s_dx, ch) : 0.0f, sum_ddt = n == 0 ? sum_states(s_ddt, ch) : 0.0f;
#endif
    if (n == 0) {  // per channel: sums over the states
      if (has_z) {
        const float y = Dv * x + sum_y, sg = sigmoid_f(zz);
        ACC_STORE(dz, io, dout_t * y * sg * (1.0f + zz * (1.0f - sg)), acc_dz);
      }
      ACC_STORE(du, io, dy * Dv + sum_dx, acc_du);
      const float ddt = sum_ddt;
      const float draw = use_softplus ? ddt * sigmoid_f(raw) : ddt;
      ACC_STORE(ddelta, io, draw, acc_ddelta);
      dbias_acc += draw;
      dDv += dy * x;
    }
#if SHFL
    if (l < 2 * DSTATE) {  // per state: the warps' partials; lanes [0, N) dB, [N, 2N) dC
      const int sn = l % DSTATE;
      __local const float* part = l < DSTATE ? s_dB : s_dC;
      float v = 0.0f;
      for (int w = 0; w < WG / 32; ++w) v += part[w * DSTATE + sn];
      (l < DSTATE ? dBc : dCc)[(((long)b * L + t) * DSTATE + sn) * groups + g_idx] = v;
    }
#else
    if (ch == 0) {  // per state: sums over the group's channels
      float sb = 0.0f, sc = 0.0f;
      for (int k = 0; k < CPG; ++k) {
        sb += s_dB[k * DSTATE + n];
        sc += s_dC[k * DSTATE + n];
      }
      const long o = (((long)b * L + t) * DSTATE + n) * groups + g_idx;
      dBc[o] = sb;
      dCc[o] = sc;
    }
#endif
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (active) {
    const long pc = (long)c * be + col;  // partials (NC, B, E [, N])
    dA_p[pc * DSTATE + n] = dA;
    if (n == 0) {
      dD_p[pc] = dDv;
      dbias_p[pc] = dbias_acc;
    }
  }
}
