// Selective scan, lanes mapping (for GPUs): the same math and outputs as cl/selective_scan.cl
// (read its header) and the same chunk decomposition as cl/selective_scan_states.cl (summaries
// of every chunk at once, the carries of cl/selective_scan_carry.cl, then every chunk again from
// its true carry), with four states per work-item:
//   - a channel's N states lie in LANES = N/4 neighbouring work-items (l = ch * LANES + q holds
//     states 4q .. 4q+3 of channel ch), so a sum over n is log2(LANES) shuffles, and the step's
//     per-channel work (softplus, the gate) is repeated LANES times, not N;
//   - the backward walks each chunk in stretches of SUB steps whose states it recomputes into
//     registers (the state at each stretch's start goes to Hsub, read back by the same
//     work-item), so no recomputed states travel through global memory step by step;
//   - dB / dC of a step (sums over channels) are summed over the CW = 32/LANES channels of a warp
//     by a reduce-scatter of the lane's 8 values (dB and dC of its 4 states: 7 shuffles for
//     N = 16, each lane keeping one sum), then over the group's warps through local memory once
//     per stretch, in a fixed order: dBc, dCc (B, L, N, E/CPG).
// Decays are exp2(dt · A·log2 e) (one exp2 per state and step).
// Layouts: as cl/selective_scan.cl; per-chunk arrays (B, NC, N, E): hs, P, S or Q, Gin;
// Hsub (B, NC, NSUB, N, E) with NSUB = ceil(chunk / SUB); partials dA_p (NC, B, E, N),
// dD_p, dbias_p (NC, B, E).
// A work-group is one (b, chunk, CPG channels): WG = CPG · LANES work-items, whole warps of 32;
// launched with exactly B · NC · E · LANES work-items (no early returns: every work-item
// reaches every barrier and shuffle).
// Kernels:
//   lanes_summary_fwd   P, S of every chunk       lanes_summary_bwd   P, Q of every chunk
//   lanes_chunks_fwd    out, every chunk from hs  lanes_chunks_bwd    du, ddelta, dz, dBc, dCc and
//                                                                     the dA, dD, dbias partials
// SHFL 1 (NVIDIA only): shuffles are PTX shfl.sync; SHFL 0: the same exchanges through local
// memory and barriers (slow; it exists so that PoCL runs and tests the same code).
// Knobs: -DDSTATE=N (a multiple of 4, N/4 a power of two <= 32), -DCPG, -DSUB (the host's default
// 8: fewer registers than 16, measured faster on the H100), -DSHFL.
// Sizes arrive as long (the `_arg` parameters); the host checked that they fit in an int.
#ifndef DSTATE
#define DSTATE 16
#endif
#ifndef CPG
#define CPG 32
#endif
#ifndef SUB
#define SUB 16
#endif
#ifndef SHFL
#define SHFL 0
#endif
#define LANES (DSTATE / 4)
#define WG (CPG * LANES)
#define WARPS (WG / 32)
#define NV 8  // values a lane reduces over channels per step: dB and dC of its 4 states
// Loops that hold shuffles are unrolled with SHFL 1 (so that register arrays stay registers); with
// SHFL 0 every shuffle is two barriers, and unrolled barriers make PoCL's compile time explode.
#if SHFL
#define UNROLL_SHUFFLES _Pragma("unroll")
#else
#define UNROLL_SHUFFLES _Pragma("unroll 1")
#endif

inline float softplus_f(float x) { return fmax(x, 0.0f) + log1p(exp(-fabs(x))); }
inline float sigmoid_f(float x) { return 1.0f / (1.0f + exp(-x)); }
inline float step_size(float raw, int use_softplus) { return use_softplus ? softplus_f(raw) : raw; }

// v of the work-item whose local id differs from this one's in the bits of `offset` (< 32).
#if SHFL
inline float lane_xor(float v, int offset, __local float* x) { return shfl_xor(v, offset); }
#else
inline float lane_xor(float v, int offset, __local float* x) {
  const int l = get_local_id(0);
  x[l] = v;
  barrier(CLK_LOCAL_MEM_FENCE);
  const float r = x[l ^ offset];
  barrier(CLK_LOCAL_MEM_FENCE);
  return r;
}
#endif

// The sum of v over the LANES work-items of this channel, in every one of them (bitwise equal).
inline float channel_sum(float v, __local float* x) {
  UNROLL_SHUFFLES
  for (int o = 1; o < LANES; o <<= 1) v += lane_xor(v, o, x);
  return v;
}

// v[0 .. NV) summed over the channels of this warp (lane bits LANES .. 16). Afterwards this lane
// holds the sums of values base .. base + KEEP - 1 in v[0 .. KEEP) (KEEP = max(1, NV·LANES/32));
// returns base. Every value is summed in one fixed order.
inline int warp_reduce_scatter(float* v, __local float* x) {
  const int l = get_local_id(0);
  int m = NV, base = 0;
  UNROLL_SHUFFLES
  for (int o = 16; o >= LANES; o >>= 1) {
    const int hi = (l & o) != 0;
    if (m > 1) {
      m >>= 1;
      UNROLL_SHUFFLES
      for (int i = 0; i < NV / 2; ++i)
        if (i < m) {
          const float send = hi ? v[i] : v[i + m], keep = hi ? v[i + m] : v[i];
          v[i] = keep + lane_xor(send, o, x);
        }
      base += hi ? m : 0;
    } else {
      v[0] += lane_xor(v[0], o, x);
    }
  }
  return base;
}

// The four A columns of this work-item, times log2(e) (for exp2) and as they are (for dA).
#define LOAD_A(A, e, q)                                                   \
  const float4 a4 = vload4(0, A + (e) * DSTATE + 4 * (q));                \
  const float a[4] = {a4.s0, a4.s1, a4.s2, a4.s3};                        \
  const float a2[4] = {a4.s0 * M_LOG2E_F, a4.s1 * M_LOG2E_F, a4.s2 * M_LOG2E_F, a4.s3 * M_LOG2E_F};

// Position of this work-item: channel e of batch row b, chunk c, its states 4q .. 4q+3.
#define DECODE_ITEM()                                                               \
  const int l = get_local_id(0), q = l % LANES, ch = l / LANES;                     \
  const int groups = E / CPG, nc = (L + chunk - 1) / chunk, grp = get_group_id(0); \
  const int g_idx = grp % groups, c = (grp / groups) % nc, b = grp / (groups * nc); \
  const int e = g_idx * CPG + ch, t0 = c * chunk, t1 = min(L, t0 + chunk);

// Index of (b, c, state 4q + j, e) in a (B, NC, N, E) array.
inline long chunk_index(int b, int c, int nc, int q, int j, int E, int e) {
  return (((long)b * nc + c) * DSTATE + 4 * q + j) * E + e;
}

// A chunk's summary of this work-item's 4 states: P (the decays' product) and S or Q.
inline void store_summary(__global float* restrict P, __global float* restrict X, int b, int c, int nc, int q,
                          int E, int e, const float* p, const float* x) {
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const long o = chunk_index(b, c, nc, q, j, E, e);
    P[o] = p[j];
    X[o] = x[j];
  }
}

// What a step reads: x = u, raw = delta (before bias and softplus), z, dout (backward only),
// and this work-item's 4 entries of B and C.
typedef struct {
  float x, raw, z, dout;
  float4 B, C;
} StepInputs;

inline StepInputs load_step(__global const float* restrict u, __global const float* restrict delta,
                            __global const float* restrict z, __global const float* restrict Bm,
                            __global const float* restrict Cm, int b, int L, int E, int e, int q, int t,
                            int has_z) {
  const long i = ((long)b * L + t) * E + e, bc = ((long)b * L + t) * DSTATE + 4 * q;
  StepInputs s;
  s.x = u[i];
  s.raw = delta[i];
  s.z = has_z ? z[i] : 0.0f;
  s.dout = 0.0f;
  s.B = vload4(0, Bm + bc);
  s.C = vload4(0, Cm + bc);
  return s;
}

// The backward walk's inputs of a step (x and dt come from the stretch's recompute).
inline StepInputs load_grad_step(__global const float* restrict dout, __global const float* restrict z,
                                 __global const float* restrict Bm, __global const float* restrict Cm,
                                 int b, int L, int E, int e, int q, int t, int has_z) {
  const long i = ((long)b * L + t) * E + e, bc = ((long)b * L + t) * DSTATE + 4 * q;
  StepInputs s;
  s.x = 0.0f;
  s.raw = 0.0f;
  s.dout = dout[i];
  s.z = has_z ? z[i] : 0.0f;
  s.B = vload4(0, Bm + bc);
  s.C = vload4(0, Cm + bc);
  return s;
}

// One step of the forward recurrence for this work-item's 4 states (p: the decays' product).
inline void summary_fwd_step(__global const float* restrict u, __global const float* restrict delta,
                             __global const float* restrict Bm, int b, int L, int E, int e, int q, int t,
                             float bias, int use_softplus, const float* a2, float* h, float* p) {
  const long i = ((long)b * L + t) * E + e;
  const float dt = step_size(delta[i] + bias, use_softplus), dx = dt * u[i];
  const float4 B4 = vload4(0, Bm + ((long)b * L + t) * DSTATE + 4 * q);
  const float Bv[4] = {B4.s0, B4.s1, B4.s2, B4.s3};
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const float an = exp2(dt * a2[j]);
    h[j] = an * h[j] + dx * Bv[j];
    if (p) p[j] *= an;
  }
}

// Step k of a stretch starting at ts, its states kept: H[k] from H[k-1] (or h0), dt and x too.
inline void recompute_step(__global const float* restrict u, __global const float* restrict delta,
                           __global const float* restrict Bm, int b, int L, int E, int e, int q, int ts, int k,
                           float bias, int use_softplus, const float* a2, const float* h0, float (*H)[4],
                           float* dtv, float* xv) {
  const long i = ((long)b * L + ts + k) * E + e;
  const float x = u[i], dt = step_size(delta[i] + bias, use_softplus);
  const float4 B4 = vload4(0, Bm + ((long)b * L + ts + k) * DSTATE + 4 * q);
  const float Bv[4] = {B4.s0, B4.s1, B4.s2, B4.s3};
  dtv[k] = dt;
  xv[k] = x;
#pragma unroll
  for (int j = 0; j < 4; ++j) H[k][j] = exp2(dt * a2[j]) * (k > 0 ? H[k - 1][j] : h0[j]) + dt * x * Bv[j];
}

// One step of the backward summary (g: dL/dh carried towards the chunk's start).
inline void summary_bwd_step(__global const float* restrict delta, __global const float* restrict Cm,
                             __global const float* restrict z, __global const float* restrict dout,
                             int b, int L, int E, int e, int q, int t, float bias, int has_z,
                             int use_softplus, const float* a2, float* g, float* p) {
  const long i = ((long)b * L + t) * E + e;
  const float dt = step_size(delta[i] + bias, use_softplus);
  float dy = dout[i];
  if (has_z) {
    const float zz = z[i];
    dy *= zz * sigmoid_f(zz);
  }
  const float4 C4 = vload4(0, Cm + ((long)b * L + t) * DSTATE + 4 * q);
  const float Cv[4] = {C4.s0, C4.s1, C4.s2, C4.s3};
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const float an = exp2(dt * a2[j]);
    g[j] = (g[j] + dy * Cv[j]) * an;
    p[j] *= an;
  }
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void lanes_summary_fwd(__global const float* restrict u, ulong u_off, __global const float* restrict delta, ulong delta_off,
                       __global const float* restrict A, ulong A_off, __global const float* restrict Bm, ulong Bm_off,
                       __global const float* restrict dbias, ulong dbias_off,
                       __global float* restrict P, ulong P_off, __global float* restrict S, ulong S_off,
                       long nb_arg, long L_arg, long E_arg, long chunk_arg, int has_bias, int use_softplus) {
  const int L = L_arg, E = E_arg, chunk = chunk_arg;  // fit: checked by the host
  u += u_off; delta += delta_off; A += A_off; Bm += Bm_off; dbias += dbias_off; P += P_off; S += S_off;
  DECODE_ITEM();
  LOAD_A(A, e, q);
  const float bias = has_bias ? dbias[e] : 0.0f;
  float h[4] = {0.0f, 0.0f, 0.0f, 0.0f}, p[4] = {1.0f, 1.0f, 1.0f, 1.0f};
  // Whole stretches unrolled without guards (their loads can all be in flight), then the rest.
  const int t_full = t0 + (t1 - t0) / SUB * SUB;
  for (int ts = t0; ts < t_full; ts += SUB)
#pragma unroll
    for (int k = 0; k < SUB; ++k) summary_fwd_step(u, delta, Bm, b, L, E, e, q, ts + k, bias, use_softplus, a2, h, p);
  for (int t = t_full; t < t1; ++t) summary_fwd_step(u, delta, Bm, b, L, E, e, q, t, bias, use_softplus, a2, h, p);
  store_summary(P, S, b, c, nc, q, E, e, p, h);
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void lanes_chunks_fwd(__global const float* restrict u, ulong u_off, __global const float* restrict delta, ulong delta_off,
                      __global const float* restrict A, ulong A_off, __global const float* restrict Bm, ulong Bm_off,
                      __global const float* restrict Cm, ulong Cm_off, __global const float* restrict D, ulong D_off,
                      __global const float* restrict z, ulong z_off, __global const float* restrict dbias, ulong dbias_off,
                      __global const float* restrict hs, ulong hs_off, __global float* restrict out, ulong out_off,
                      long nb_arg, long L_arg, long E_arg, long chunk_arg,
                      int has_z, int has_bias, int use_softplus) {
  const int L = L_arg, E = E_arg, chunk = chunk_arg;  // fit: checked by the host
  u += u_off; delta += delta_off; A += A_off; Bm += Bm_off; Cm += Cm_off; D += D_off;
  z += z_off; dbias += dbias_off; hs += hs_off; out += out_off;
  __local float xchg[SHFL ? 1 : WG];
  DECODE_ITEM();
  LOAD_A(A, e, q);
  const float Dv = D[e], bias = has_bias ? dbias[e] : 0.0f;
  float h[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) h[j] = hs[chunk_index(b, c, nc, q, j, E, e)];
  // Each step's inputs are loaded one step ahead (software pipelining: the loads are in flight
  // during the previous step's shuffles).
  StepInputs nxt = load_step(u, delta, z, Bm, Cm, b, L, E, e, q, t0, has_z);
  for (int t = t0; t < t1; ++t) {  // t1: the same for the whole group
    const StepInputs cur = nxt;
    if (t + 1 < t1) nxt = load_step(u, delta, z, Bm, Cm, b, L, E, e, q, t + 1, has_z);
    const float dt = step_size(cur.raw + bias, use_softplus), dx = dt * cur.x;
    const float Bv[4] = {cur.B.s0, cur.B.s1, cur.B.s2, cur.B.s3}, Cv[4] = {cur.C.s0, cur.C.s1, cur.C.s2, cur.C.s3};
    float part = 0.0f;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      h[j] = exp2(dt * a2[j]) * h[j] + dx * Bv[j];
      part += Cv[j] * h[j];
    }
    const float sum = channel_sum(part, xchg);
    if (q == 0) {
      float y = Dv * cur.x + sum;
      if (has_z) y *= cur.z * sigmoid_f(cur.z);
      out[((long)b * L + t) * E + e] = y;
    }
  }
}

// Q_c: the carry a chunk passes to the one before it when nothing enters it from later ones.
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void lanes_summary_bwd(__global const float* restrict delta, ulong delta_off, __global const float* restrict A, ulong A_off,
                       __global const float* restrict Cm, ulong Cm_off, __global const float* restrict z, ulong z_off,
                       __global const float* restrict dbias, ulong dbias_off, __global const float* restrict dout, ulong dout_off,
                       __global float* restrict P, ulong P_off, __global float* restrict Q, ulong Q_off,
                       long nb_arg, long L_arg, long E_arg, long chunk_arg,
                       int has_z, int has_bias, int use_softplus) {
  const int L = L_arg, E = E_arg, chunk = chunk_arg;  // fit: checked by the host
  delta += delta_off; A += A_off; Cm += Cm_off; z += z_off; dbias += dbias_off; dout += dout_off;
  P += P_off; Q += Q_off;
  DECODE_ITEM();
  LOAD_A(A, e, q);
  const float bias = has_bias ? dbias[e] : 0.0f;
  float g[4] = {0.0f, 0.0f, 0.0f, 0.0f}, p[4] = {1.0f, 1.0f, 1.0f, 1.0f};
  // Whole stretches from the end, unrolled without guards, then the rest (the chunk's start).
  const int t_part = t1 - (t1 - t0) / SUB * SUB;
  for (int te = t1; te > t_part; te -= SUB)
#pragma unroll
    for (int k = 1; k <= SUB; ++k)
      summary_bwd_step(delta, Cm, z, dout, b, L, E, e, q, te - k, bias, has_z, use_softplus, a2, g, p);
  for (int t = t_part - 1; t >= t0; --t)
    summary_bwd_step(delta, Cm, z, dout, b, L, E, e, q, t, bias, has_z, use_softplus, a2, g, p);
  store_summary(P, Q, b, c, nc, q, E, e, p, g);
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void lanes_chunks_bwd(__global const float* restrict u, ulong u_off, __global const float* restrict delta, ulong delta_off,
                      __global const float* restrict A, ulong A_off, __global const float* restrict Bm, ulong Bm_off,
                      __global const float* restrict Cm, ulong Cm_off, __global const float* restrict D, ulong D_off,
                      __global const float* restrict z, ulong z_off, __global const float* restrict dbias, ulong dbias_off,
                      __global const float* restrict dout, ulong dout_off, __global const float* restrict hs, ulong hs_off,
                      __global const float* restrict Gin, ulong Gin_off, __global float* restrict Hsub, ulong Hsub_off,
                      __global float* restrict du, ulong du_off, __global float* restrict ddelta, ulong ddelta_off,
                      __global float* restrict dz, ulong dz_off, __global float* restrict dBc, ulong dBc_off,
                      __global float* restrict dCc, ulong dCc_off, __global float* restrict dA_p, ulong dA_p_off,
                      __global float* restrict dD_p, ulong dD_p_off, __global float* restrict dbias_p, ulong dbias_p_off,
                      long nb_arg, long L_arg, long E_arg, long chunk_arg,
                      int has_z, int has_bias, int use_softplus, int acc_du, int acc_ddelta, int acc_dz) {
  const int nb = nb_arg, L = L_arg, E = E_arg, chunk = chunk_arg;  // fit: checked by the host
  u += u_off; delta += delta_off; A += A_off; Bm += Bm_off; Cm += Cm_off; D += D_off;
  z += z_off; dbias += dbias_off; dout += dout_off; hs += hs_off; Gin += Gin_off; Hsub += Hsub_off;
  du += du_off; ddelta += ddelta_off; dz += dz_off; dBc += dBc_off; dCc += dCc_off;
  dA_p += dA_p_off; dD_p += dD_p_off; dbias_p += dbias_p_off;
  __local float xchg[SHFL ? 1 : WG];
  __local float part[WARPS * SUB * 2 * DSTATE];  // (warp, step of the stretch, dB | dC, n)
  DECODE_ITEM();
  LOAD_A(A, e, q);
  const int warp = l / 32, nsub = (chunk + SUB - 1) / SUB;
  const float Dv = D[e], bias = has_bias ? dbias[e] : 0.0f;
  // This work-item's state j at the start of stretch s (s >= 1) of its chunk.
#define HSUB(s, j) Hsub[((((long)b * nc + c) * nsub + (s)) * DSTATE + 4 * q + (j)) * E + e]
  // 1. The states entering each stretch, from the chunk's saved one.
  float h[4], g[4], dA[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const long o = chunk_index(b, c, nc, q, j, E, e);
    h[j] = hs[o];
    g[j] = Gin[o];
  }
  for (int ts = t0; ts < t1; ts += SUB) {
    if (ts > t0)
#pragma unroll
      for (int j = 0; j < 4; ++j) HSUB((ts - t0) / SUB, j) = h[j];
    if (ts + SUB >= t1) break;  // the last stretch's end state is not needed
#pragma unroll
    for (int k = 0; k < SUB; ++k) summary_fwd_step(u, delta, Bm, b, L, E, e, q, ts + k, bias, use_softplus, a2, h, 0);
  }
  // 2. Stretches last to first: recompute its states into registers, then walk them backwards.
  float dDv = 0.0f, dbias_acc = 0.0f;
  for (int s = (t1 - t0 - 1) / SUB; s >= 0; --s) {
    const int ts = t0 + s * SUB, len = min(SUB, t1 - ts);
    float h0[4], H[SUB][4], dtv[SUB], xv[SUB];
#pragma unroll
    for (int j = 0; j < 4; ++j) h0[j] = s == 0 ? hs[chunk_index(b, c, nc, q, j, E, e)] : HSUB(s, j);
    if (len == SUB) {  // whole stretches without guards: every load can be in flight at once
#pragma unroll
      for (int k = 0; k < SUB; ++k)
        recompute_step(u, delta, Bm, b, L, E, e, q, ts, k, bias, use_softplus, a2, h0, H, dtv, xv);
    } else {
#pragma unroll
      for (int k = 0; k < SUB; ++k)
        if (k < len) recompute_step(u, delta, Bm, b, L, E, e, q, ts, k, bias, use_softplus, a2, h0, H, dtv, xv);
    }
    StepInputs nxt = load_grad_step(dout, z, Bm, Cm, b, L, E, e, q, ts + len - 1, has_z);
    UNROLL_SHUFFLES
    for (int k = SUB - 1; k >= 0; --k) {
      if (k < len) {  // the same for the whole group
        const StepInputs cur = nxt;  // loaded one step ahead, as in the forward
        if (k > 0) nxt = load_grad_step(dout, z, Bm, Cm, b, L, E, e, q, ts + k - 1, has_z);
        const int t = ts + k;
        const long i = ((long)b * L + t) * E + e;
        const float dt = dtv[k], x = xv[k], dout_t = cur.dout, zz = cur.z;
        const float Bv[4] = {cur.B.s0, cur.B.s1, cur.B.s2, cur.B.s3}, Cv[4] = {cur.C.s0, cur.C.s1, cur.C.s2, cur.C.s3};
        const float sg = has_z ? sigmoid_f(zz) : 1.0f, dy = has_z ? dout_t * zz * sg : dout_t;
        float py = 0.0f, pdx = 0.0f, pddt = 0.0f, v[NV];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const float hp = k > 0 ? H[k - 1][j] : h0[j], an = exp2(dt * a2[j]);
          const float gn = g[j] + dy * Cv[j];  // dL/dh_t
          py += Cv[j] * H[k][j];
          pdx += gn * Bv[j];
          pddt += gn * (a[j] * an * hp + Bv[j] * x);
          dA[j] += gn * dt * an * hp;
          g[j] = gn * an;
          v[j] = gn * dt * x;       // dB
          v[4 + j] = dy * H[k][j];  // dC
        }
        const float sum_y = has_z ? channel_sum(py, xchg) : 0.0f;
        const float sum_dx = channel_sum(pdx, xchg) * dt, sum_ddt = channel_sum(pddt, xchg);
        const int base = warp_reduce_scatter(v, xchg);
#pragma unroll
        for (int i2 = 0; i2 < (NV * LANES + 31) / 32; ++i2) {
          const int vi = base + i2;  // dB of state 4q + vi, or dC of state 4q + vi - 4
          part[(warp * SUB + k) * 2 * DSTATE + (vi < 4 ? 0 : DSTATE - 4) + 4 * q + vi] = v[i2];
        }
        if (q == 0) {  // per channel
          if (has_z) ACC_STORE(dz, i, dout_t * (Dv * x + sum_y) * sg * (1.0f + zz * (1.0f - sg)), acc_dz);
          ACC_STORE(du, i, dy * Dv + sum_dx, acc_du);
          const float draw = use_softplus ? sum_ddt * sigmoid_f(delta[i] + bias) : sum_ddt;
          ACC_STORE(ddelta, i, draw, acc_ddelta);
          dbias_acc += draw;
          dDv += dy * x;
        }
      }
    }
    // The stretch's dB, dC: the warps' sums, in order.
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int r = l; r < len * 2 * DSTATE; r += WG) {
      const int k = r / (2 * DSTATE), col = r % (2 * DSTATE);
      float sum = 0.0f;
      for (int w = 0; w < WARPS; ++w) sum += part[(w * SUB + k) * 2 * DSTATE + col];
      const long o = (((long)b * L + ts + k) * DSTATE + col % DSTATE) * groups + g_idx;
      (col < DSTATE ? dBc : dCc)[o] = sum;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
#undef HSUB
  const long pc = (long)c * nb * E + (long)b * E + e;  // partials (NC, B, E [, N])
  vstore4((float4)(dA[0], dA[1], dA[2], dA[3]), 0, dA_p + pc * DSTATE + 4 * q);
  if (q == 0) {
    dD_p[pc] = dDv;
    dbias_p[pc] = dbias_acc;
  }
}
