// Selective scan, state- and chunk-parallel mapping (for GPUs): the same math and outputs as
// cl/selective_scan.cl (read its header), with one work-item per (b, e, n, chunk). Both
// recurrences are linear in what they carry, so a chunk only needs the carry entering it:
//   forward   h entering chunk c+1 = P_c · (h entering c) + S_c       (per (b, e, n))
//   backward  g entering chunk c-1 = P_c · (g entering c) + Q_c
// where P_c = prod over the chunk of exp(dt_t · A) and S_c, Q_c are the chunk's own results
// from a zero carry. Summaries run every chunk at once, a short sequential pass over the NC
// chunks combines them, then every chunk runs again from its true carry.
// Sums over n (y, du, ddelta) and over the CPG channels of a work-group (dB, dC) go through
// local memory in a fixed order. A work-group is CPG channels x DSTATE states of one (b, chunk),
// local id l = ch * DSTATE + n; E % CPG == 0; launched with exactly B * E * DSTATE * NC work-items
// (no early returns: every work-item reaches every barrier). Inputs of the next step are loaded
// before the current step's barriers (software pipelining) to hide memory latency.
// Layouts: as cl/selective_scan.cl; per-chunk arrays (B, NC, N, E): hs (state entering each
// chunk), P, S or Q, Gin (carry entering each chunk from later ones).
// Kernels:
//   scan_summary_fwd   P, S of every chunk
//   scan_carry_fwd     hs (and h_last (B, E, N)) from P, S; one work-item per (b, e, n)
//   scan_chunks_fwd    out, every chunk from hs
//   scan_summary_bwd   P, Q of every chunk
//   scan_carry_bwd     Gin from P, Q
//   scan_chunks_bwd    `flight` chunks from chunk c0 on: recompute states into Hs
//                      (flight, chunk, N, B·E), walk backwards from Gin; writes du, ddelta, dz,
//                      dBc, dCc (B, L, N, E/CPG) summed over the group's channels, and per-chunk
//                      partials dA_p (NC, B, E, N), dD_p, dbias_p (NC, B, E)
// Knobs: -DDSTATE=N, -DCPG=channels per work-group.
// Sizes arrive as long (the `_arg` parameters); the host checked that they fit in an int, and
// the kernels narrow them at the top so that the loops compile as 32-bit code.
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

__kernel void scan_carry_fwd(__global const float* P, ulong P_off, __global const float* S, ulong S_off,
                             __global float* hs, ulong hs_off, __global float* h_last, ulong h_last_off,
                             long nb_arg, long L_arg, long E_arg, long chunk_arg) {
  const int nb = nb_arg, L = L_arg, E = E_arg, chunk = chunk_arg;  // fit: checked by the host
  P += P_off; S += S_off; hs += hs_off; h_last += h_last_off;
  const int nc = (L + chunk - 1) / chunk;
  const long gid = get_global_id(0);
  if (gid >= (long)nb * E * DSTATE) return;
  const int e = gid % E, n = (gid / E) % DSTATE, b = gid / ((long)E * DSTATE);
  float h = 0.0f;
  for (int c = 0; c < nc; ++c) {
    const long o = (((long)b * nc + c) * DSTATE + n) * E + e;
    hs[o] = h;
    h = P[o] * h + S[o];
  }
  h_last[((long)b * E + e) * DSTATE + n] = h;
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
  __local float part[WG];
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
    part[l] = C_t * h;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (n == 0) {
      float y = Dv * x + sum_states(part, ch);
      if (has_z) y *= z_t * sigmoid_f(z_t);
      out[io] = y;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
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

__kernel void scan_carry_bwd(__global const float* P, ulong P_off, __global const float* Q, ulong Q_off,
                             __global float* Gin, ulong Gin_off,
                             long nb_arg, long L_arg, long E_arg, long chunk_arg) {
  const int nb = nb_arg, L = L_arg, E = E_arg, chunk = chunk_arg;  // fit: checked by the host
  P += P_off; Q += Q_off; Gin += Gin_off;
  const int nc = (L + chunk - 1) / chunk;
  const long gid = get_global_id(0);
  if (gid >= (long)nb * E * DSTATE) return;
  const int e = gid % E, n = (gid / E) % DSTATE, b = gid / ((long)E * DSTATE);
  float g = 0.0f;
  for (int c = nc - 1; c >= 0; --c) {
    const long o = (((long)b * nc + c) * DSTATE + n) * E + e;
    Gin[o] = g;
    g = P[o] * g + Q[o];
  }
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
  __local float s_y[WG], s_dx[WG], s_ddt[WG], s_dB[WG], s_dC[WG];
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
  __global float* H = Hs + (long)slot * chunk * DSTATE * be;
  // 1. Recompute the chunk's states into this slot of Hs (chunk, N, B·E).
  float h = h0;
  for (int t = t0; t < t1; ++t) {
    const long i = ((long)b * L + t) * E + e;
    const float dt = step_size(delta[i] + bias, use_softplus);
    h = exp(dt * a) * h + dt * u[i] * Bm[((long)b * L + t) * DSTATE + n];
    H[((long)(t - t0) * DSTATE + n) * be + col] = h;
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
    const float ht = H[((long)tl * DSTATE + n) * be + col];
    const float hp = tl > 0 ? H[((long)(tl - 1) * DSTATE + n) * be + col] : h0;
    const float dy = has_z ? dout_t * zz * sigmoid_f(zz) : dout_t;
    const float an = exp(dt * a);
    const float gn = g + dy * C_t;  // dL/dh_t
    s_y[l] = C_t * ht;
    s_dx[l] = gn * dt * B_t;
    s_ddt[l] = gn * (a * an * hp + B_t * x);
    s_dB[l] = gn * dt * x;
    s_dC[l] = dy * ht;
    dA += gn * dt * an * hp;
    g = gn * an;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (n == 0) {  // per channel: sums over the states
      if (has_z) {
        const float y = Dv * x + sum_states(s_y, ch), sg = sigmoid_f(zz);
        ACC_STORE(dz, io, dout_t * y * sg * (1.0f + zz * (1.0f - sg)), acc_dz);
      }
      ACC_STORE(du, io, dy * Dv + sum_states(s_dx, ch), acc_du);
      const float ddt = sum_states(s_ddt, ch);
      const float draw = use_softplus ? ddt * sigmoid_f(raw) : ddt;
      ACC_STORE(ddelta, io, draw, acc_ddelta);
      dbias_acc += draw;
      dDv += dy * x;
    }
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
