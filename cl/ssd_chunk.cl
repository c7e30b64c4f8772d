// SSD (Mamba2's state-space dual scan): the matrix work inside each chunk of CHUNK steps, forward
// and backward (the scalar parts are in cl/ssd_scan.cl; its header has the layouts; the math is
// in include/magellano/ops/ssd.hpp). Within chunk c of head h (group g), with t, s the steps of
// the chunk, cs the chunk's cumulative sum of dtp * A and cs_end its last value:
//   decay  Dm[t, s] = exp(cs[t] - cs[s]) for s <= t (else 0)         (QC x QC, in local memory)
//   CB[t, s]   = sum_n C[t, n] B[s, n]                                 per (b, chunk, group)
//   state[n, p] = sum_t w[t] * B[t, n] * x[t, p],  w[t] = exp(cs_end - cs[t]) * dtp[t]
//   y[t, p]    = exp(cs[t]) * sum_n C[t, n] S[n, p] + sum_s Dm[t, s] CB[t, s] dtp[s] x[s, p] + D x[t, p]
// with S the state entering the chunk (S: (N, P), stored transposed relative to the final state).
// Kernels (one work-group per (b, chunk, head), or per (b, chunk, group) for ssd_chunk_cb):
//   ssd_chunk_outer   out[n, p] = sum_t w[t] lhs[t, n] rhs[t, p]: the chunk's own state (lhs = B,
//                     rhs = x, w as above) or, backward, the gradient of S through the chunk's
//                     outputs (lhs = C, rhs = dy, w[t] = exp(cs[t]))
//   ssd_chunk_cb      CB (B, G, NC, QC, QCP)
//   ssd_chunk_scan    y
//   ssd_bwd_dx        dx, ddt_d (gradient of dtp at fixed cs), dD partials (B * NC, H), dcs_end
//   ssd_bwd_dbc       dB_h, dC_h (per head), dcs (gradient of cs)
// Every kernel is a few small matrix products out[r, j] = sum_k lhs(r, k) * rhs(k, j). The rhs,
// CT columns at a time, is staged in local memory, zero-padded (STAGE_ROWS; STAGE_COLS for a
// transposed source); every work-item keeps ROWS rows of the CT columns in registers as VEC-wide
// vectors (ACCUMULATE) and walks the rows in blocks of ITEMS * ROWS. The two mappings are two
// sets of these knobs (src/ops/ssd_plan.cpp):
//   group per chunk (GPUs): ITEMS ~ QC / ROWS work-items share each staged tile
//   item per chunk  (CPUs): ITEMS = 1, one work-item walks all rows with wide vectors
// Knobs: CHUNK (QC), HEADDIM (P), DSTATE (N), ROWS, ITEMS, VEC (divides P and N), CT (a multiple
// of VEC). Local memory: at most 4 QCP + QC (QCP + 1) + ITEMS + (max(N, P) + QC) CT floats
// (ssd_bwd_dx; ssd_plan.cpp checks it against the device).
#ifndef CHUNK
#define CHUNK 64
#endif
#ifndef HEADDIM
#define HEADDIM 64
#endif
#ifndef DSTATE
#define DSTATE 64
#endif
#ifndef ROWS
#define ROWS 4
#endif
#ifndef ITEMS
#define ITEMS 1
#endif
#ifndef VEC
#define VEC 16
#endif
#ifndef CT
#define CT 64
#endif
#define CTV (CT / VEC)
// Register tiles (acc[ROWS][CTV]) stay in registers only when their loops are fully unrolled.
#define UNROLL _Pragma("unroll")
#define QCP ((CHUNK + VEC - 1) / VEC * VEC)  // chunk length padded to whole vectors
// Row stride of the QC x QC matrices in local memory (decay, W). In the group mapping each
// work-item reads down a column of them (its own rows, the same k): an odd stride puts those
// reads in different banks, where QCP (a multiple of 32 at chunk 64) put the whole warp in one.
#define DROW (ITEMS > 1 ? QCP + 1 : QCP)
#define XROW (H * HEADDIM)                    // row stride of x, dy, dx, y in floats
#define BROW (G * DSTATE)                     // row stride of B and C

#if VEC == 1
typedef float vf;
typedef int vi;
#define VLOAD(p) (*(p))
#define VSTORE(v, p) (*(p) = (v))
#define IOTA 0
#define HSUM(v) (v)
#elif VEC == 2
typedef float2 vf;
typedef int2 vi;
#define VLOAD(p) vload2(0, p)
#define VSTORE(v, p) vstore2(v, 0, p)
#define IOTA ((int2)(0, 1))
#define HSUM(v) ((v).s0 + (v).s1)
#elif VEC == 4
typedef float4 vf;
typedef int4 vi;
#define VLOAD(p) vload4(0, p)
#define VSTORE(v, p) vstore4(v, 0, p)
#define IOTA ((int4)(0, 1, 2, 3))
#define HSUM(v) (((v).s0 + (v).s1) + ((v).s2 + (v).s3))
#elif VEC == 8
typedef float8 vf;
typedef int8 vi;
#define VLOAD(p) vload8(0, p)
#define VSTORE(v, p) vstore8(v, 0, p)
#define IOTA ((int8)(0, 1, 2, 3, 4, 5, 6, 7))
#define HSUM4(v) (((v).s0 + (v).s1) + ((v).s2 + (v).s3))
#define HSUM(v) (HSUM4((v).lo) + HSUM4((v).hi))
#elif VEC == 16
typedef float16 vf;
typedef int16 vi;
#define VLOAD(p) vload16(0, p)
#define VSTORE(v, p) vstore16(v, 0, p)
#define IOTA ((int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
#define HSUM4(v) (((v).s0 + (v).s1) + ((v).s2 + (v).s3))
#define HSUM8(v) (HSUM4((v).lo) + HSUM4((v).hi))
#define HSUM(v) (HSUM8((v).lo) + HSUM8((v).hi))
#endif

// ---- the product machinery -------------------------------------------------------------------
// tile[k_][0 .. CT) = SCALE * ROW[0 .. CT) for k_ < KN, where ROW (using k_) points at
// contiguous floats of which the first NVALID (a multiple of VEC) are read; zeros elsewhere.
#define STAGE_ROWS(tile, KN, ROW, NVALID, SCALE)                              \
  for (int i_ = get_local_id(0); i_ < (KN) * CTV; i_ += ITEMS) {            \
    const int k_ = i_ / CTV, c_ = (i_ % CTV) * VEC;                         \
    const vf v_ = c_ < (NVALID) ? VLOAD((ROW) + c_) * (vf)(SCALE) : (vf)0.0f; \
    VSTORE(v_, (tile) + k_ * CT + c_);                                      \
  }

// The transpose: tile[k][j_] = COL[k] for k < KN (a multiple of VEC) and j_ < NJ, where COL
// (using j_) points at contiguous floats; zeros for j_ >= NJ. Vector loads, scalar stores.
#define STAGE_COLS(tile, KN, COL, NJ)                                         \
  for (int i_ = get_local_id(0); i_ < CT * ((KN) / VEC); i_ += ITEMS) {     \
    const int j_ = i_ / ((KN) / VEC), k0_ = (i_ % ((KN) / VEC)) * VEC;      \
    float t_[VEC];                                                          \
    VSTORE(j_ < (NJ) ? VLOAD((COL) + k0_) : (vf)0.0f, t_);                  \
    for (int e_ = 0; e_ < VEC; ++e_) (tile)[(k0_ + e_) * CT + j_] = t_[e_]; \
  }

#define ZERO_ACC(acc)                                                       \
  UNROLL for (int r_ = 0; r_ < ROWS; ++r_)                       \
    UNROLL for (int v_ = 0; v_ < CTV; ++v_) acc[r_][v_] = (vf)0.0f;

// acc[r_][v] += LHS * tile[k_][v * VEC ...] for k_ in [K0, K1), r_ < ROWS (LHS uses r_ and k_).
#define ACCUMULATE(acc, tile, K0, K1, LHS)                                  \
  for (int k_ = (K0); k_ < (K1); ++k_) {                                    \
    __local const float* row_ = (tile) + k_ * CT;                           \
    UNROLL for (int r_ = 0; r_ < ROWS; ++r_) {                   \
      const vf a_ = (vf)(LHS);                                              \
      UNROLL for (int v_ = 0; v_ < CTV; ++v_)                    \
        acc[r_][v_] = fma(a_, VLOAD(row_ + v_ * VEC), acc[r_][v_]);         \
    }                                                                       \
  }

// acc[r_][v] *= FACTOR (uses r_).
#define SCALE_ROWS(acc, FACTOR)                                             \
  UNROLL for (int r_ = 0; r_ < ROWS; ++r_) {                     \
    const vf f_ = (vf)(FACTOR);                                             \
    UNROLL for (int v_ = 0; v_ < CTV; ++v_) acc[r_][v_] *= f_;   \
  }

// Rows r0 + r_ < NROWS, columns c0 + v * VEC < NCOLS (NCOLS a multiple of VEC) of acc to base.
#define STORE_ROWS(acc, base, stride, r0, NROWS, c0, NCOLS)                 \
  UNROLL for (int r_ = 0; r_ < ROWS; ++r_)                       \
    if ((r0) + r_ < (NROWS))                                                \
      UNROLL for (int v_ = 0; v_ < CTV; ++v_)                    \
        if ((c0) + v_ * VEC < (NCOLS))                                      \
          VSTORE(acc[r_][v_], (base) + (long)((r0) + r_) * (stride) + (c0) + v_ * VEC);

// The work-group's chunk: batch b, chunk c of nc, head h of H (group g of G), first step t0,
// lc steps (the last chunk may be short).
typedef struct {
  long b, c, h, g, nc, t0;
  int lc;
} Chunk;

inline Chunk chunk_of(long grp, long L, long H, long G) {
  Chunk k;
  k.nc = (L + CHUNK - 1) / CHUNK;
  k.h = grp % H;
  k.c = (grp / H) % k.nc;
  k.b = grp / (H * k.nc);
  k.g = k.h / (H / G);
  k.t0 = k.c * CHUNK;
  k.lc = (int)min((long)CHUNK, L - k.t0);
  return k;
}

// cs_l, dt_l [QCP] = the chunk's cs and dtp, zero past its end.
inline void load_chunk_scalars(__local float* cs_l, __local float* dt_l, __global const float* cs,
                               __global const float* dtp, long seq, int lc) {
  for (int t = get_local_id(0); t < QCP; t += ITEMS) {
    cs_l[t] = t < lc ? cs[seq + t] : 0.0f;
    dt_l[t] = t < lc ? dtp[seq + t] : 0.0f;
  }
}

// Dm [QC x DROW] = the decay matrix (row t, column s), or its transpose (row s, column t), zero
// outside s <= t < lc. Vectorised over the columns; call between barriers.
inline void build_decay(__local float* Dm, __local const float* cs_l, int lc, int transposed) {
  for (int r = get_local_id(0); r < CHUNK; r += ITEMS) {
    const vf cr = (vf)cs_l[r];
    for (int j = 0; j < QCP; j += VEC) {
      const vi col = (vi)j + IOTA;
      const vf cj = VLOAD(cs_l + j);
      const vf d = transposed ? exp(cj - cr) : exp(cr - cj);
      const vi ok = transposed ? (col >= r) & (col < lc) : (col <= r) & ((vi)r < lc);
      VSTORE(select((vf)0.0f, d, ok), Dm + r * DROW + j);
    }
  }
}

// ---- forward -----------------------------------------------------------------------------------
// lhs: (B, L, G, N); rhs: (B, L, H, P); out: (B, H, NC, N, P). to_end: w[t] = exp(cs_end - cs[t]) *
// dtp[t], else w[t] = exp(cs[t]).
__kernel __attribute__((reqd_work_group_size(ITEMS, 1, 1)))
void ssd_chunk_outer(__global const float* lhs, ulong lhs_off, __global const float* rhs, ulong rhs_off,
                     __global const float* dtp, ulong dtp_off, __global const float* cs, ulong cs_off,
                     __global float* out, ulong out_off, long L, long H, long G, int to_end) {
  lhs += lhs_off; rhs += rhs_off; dtp += dtp_off; cs += cs_off; out += out_off;
  __local float w[QCP];
  __local float tile[CHUNK * CT];
  const Chunk k = chunk_of(get_group_id(0), L, H, G);
  const int lid = get_local_id(0);
  const long seq = (k.b * H + k.h) * L + k.t0;
  const float cs_end = cs[seq + k.lc - 1];
  for (int t = lid; t < k.lc; t += ITEMS)
    w[t] = to_end ? exp(cs_end - cs[seq + t]) * dtp[seq + t] : exp(cs[seq + t]);
  __global const float* Lm = lhs + ((k.b * L + k.t0) * G + k.g) * DSTATE;
  __global const float* R = rhs + ((k.b * L + k.t0) * H + k.h) * HEADDIM;
  __global float* O = out + ((k.b * H + k.h) * k.nc + k.c) * DSTATE * HEADDIM;
  for (int p0 = 0; p0 < HEADDIM; p0 += CT) {
    barrier(CLK_LOCAL_MEM_FENCE);
    STAGE_ROWS(tile, k.lc, R + k_ * XROW + p0, HEADDIM - p0, w[k_]);
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int rb = 0; rb < DSTATE; rb += ITEMS * ROWS) {
      const int n0 = rb + lid * ROWS;
      vf acc[ROWS][CTV];
      ZERO_ACC(acc);
      ACCUMULATE(acc, tile, 0, k.lc, n0 + r_ < DSTATE ? Lm[k_ * BROW + n0 + r_] : 0.0f);
      STORE_ROWS(acc, O, HEADDIM, n0, DSTATE, p0, HEADDIM);
    }
  }
}

// Cm, Bm: (B, L, G, N); CB: (B, G, NC, QC, QCP), every element written (zero past the chunk).
__kernel __attribute__((reqd_work_group_size(ITEMS, 1, 1)))
void ssd_chunk_cb(__global const float* Cm, ulong Cm_off, __global const float* Bm, ulong Bm_off,
                  __global float* CB, ulong CB_off, long L, long G) {
  Cm += Cm_off; Bm += Bm_off; CB += CB_off;
  __local float tile[DSTATE * CT];
  const Chunk k = chunk_of(get_group_id(0), L, G, G);  // "heads" = groups here
  const int lid = get_local_id(0);
  __global const float* C0 = Cm + ((k.b * L + k.t0) * G + k.g) * DSTATE;
  __global const float* B0 = Bm + ((k.b * L + k.t0) * G + k.g) * DSTATE;
  __global float* O = CB + ((k.b * G + k.g) * k.nc + k.c) * CHUNK * QCP;
  for (int s0 = 0; s0 < QCP; s0 += CT) {
    barrier(CLK_LOCAL_MEM_FENCE);
    STAGE_COLS(tile, DSTATE, B0 + (s0 + j_) * BROW, k.lc - s0);
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int rb = 0; rb < CHUNK; rb += ITEMS * ROWS) {
      const int t0 = rb + lid * ROWS;
      vf acc[ROWS][CTV];
      ZERO_ACC(acc);
      ACCUMULATE(acc, tile, 0, DSTATE, t0 + r_ < k.lc ? C0[(t0 + r_) * BROW + k_] : 0.0f);
      STORE_ROWS(acc, O, QCP, t0, CHUNK, s0, QCP);
    }
  }
}

// x, y: (B, L, H, P); Cm: (B, L, G, N); states: S entering each chunk (B, H, NC, N, P); D: (H).
__kernel __attribute__((reqd_work_group_size(ITEMS, 1, 1)))
void ssd_chunk_scan(__global const float* x, ulong x_off, __global const float* Cm, ulong Cm_off,
                    __global const float* CB, ulong CB_off, __global const float* dtp, ulong dtp_off,
                    __global const float* cs, ulong cs_off, __global const float* states, ulong states_off,
                    __global const float* D, ulong D_off, __global float* y, ulong y_off,
                    long L, long H, long G, int has_D) {
  x += x_off; Cm += Cm_off; CB += CB_off; dtp += dtp_off; cs += cs_off; states += states_off;
  D += D_off; y += y_off;
  __local float cs_l[QCP], dt_l[QCP], Dm[CHUNK * DROW];
  __local float tS[DSTATE * CT], tX[CHUNK * CT];
  const Chunk k = chunk_of(get_group_id(0), L, H, G);
  const int lid = get_local_id(0);
  load_chunk_scalars(cs_l, dt_l, cs, dtp, (k.b * H + k.h) * L + k.t0, k.lc);
  barrier(CLK_LOCAL_MEM_FENCE);
  build_decay(Dm, cs_l, k.lc, 0);
  const float Dh = has_D ? D[k.h] : 0.0f;
  __global const float* X = x + ((k.b * L + k.t0) * H + k.h) * HEADDIM;
  __global const float* C0 = Cm + ((k.b * L + k.t0) * G + k.g) * DSTATE;
  __global const float* CBc = CB + ((k.b * G + k.g) * k.nc + k.c) * CHUNK * QCP;
  __global const float* S = states + ((k.b * H + k.h) * k.nc + k.c) * DSTATE * HEADDIM;
  __global float* Y = y + ((k.b * L + k.t0) * H + k.h) * HEADDIM;
  for (int p0 = 0; p0 < HEADDIM; p0 += CT) {
    barrier(CLK_LOCAL_MEM_FENCE);
    STAGE_ROWS(tS, DSTATE, S + k_ * HEADDIM + p0, HEADDIM - p0, 1.0f);
    STAGE_ROWS(tX, k.lc, X + k_ * XROW + p0, HEADDIM - p0, dt_l[k_]);
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int rb = 0; rb < k.lc; rb += ITEMS * ROWS) {
      const int t0 = rb + lid * ROWS;
      vf acc[ROWS][CTV];
      ZERO_ACC(acc);
      ACCUMULATE(acc, tS, 0, DSTATE, t0 + r_ < k.lc ? C0[(t0 + r_) * BROW + k_] : 0.0f);
      SCALE_ROWS(acc, t0 + r_ < k.lc ? exp(cs_l[t0 + r_]) : 0.0f);
      ACCUMULATE(acc, tX, 0, min(k.lc, t0 + ROWS),
                 t0 + r_ < k.lc ? Dm[(t0 + r_) * DROW + k_] * CBc[(t0 + r_) * QCP + k_] : 0.0f);
      if (has_D)
        UNROLL
        for (int r = 0; r < ROWS; ++r)
          if (t0 + r < k.lc)
            UNROLL
            for (int v = 0; v < CTV; ++v)
              if (p0 + v * VEC < HEADDIM) acc[r][v] += Dh * VLOAD(X + (t0 + r) * XROW + p0 + v * VEC);
      STORE_ROWS(acc, Y, XROW, t0, k.lc, p0, HEADDIM);
    }
  }
}

// ---- backward ----------------------------------------------------------------------------------
// dstates: the gradient of each chunk's own state, G (B, H, NC, N, P) (the reverse state pass);
// states: S entering each chunk.
//   u[s, p]  = sum_{t >= s} Dm[t, s] CB[t, s] dy[t, p] + exp(cs_end - cs[s]) sum_n B[s, n] G[n, p]
//   dx[s, p] (+)= dtp[s] u[s, p] + D dy[s, p];   ddt_d[s] = sum_p x[s, p] u[s, p]
//   dD_p[(b, c), h] = sum_{s, p} dy[s, p] x[s, p]
//   dcs_end[b, h, c] = sum_{n, p} G[n, p] S_next[n, p]: the gradient of cs_end through the state
//   passing (S_next = the state entering chunk c + 1 = decay S + the chunk's own state, both
//   of which scale with exp(cs_end)); zero for the last chunk, where G = 0.
__kernel __attribute__((reqd_work_group_size(ITEMS, 1, 1)))
void ssd_bwd_dx(__global const float* x, ulong x_off, __global const float* dy, ulong dy_off,
                __global const float* Bm, ulong Bm_off, __global const float* CB, ulong CB_off,
                __global const float* dtp, ulong dtp_off, __global const float* cs, ulong cs_off,
                __global const float* dstates, ulong dstates_off, __global const float* states, ulong states_off,
                __global const float* D, ulong D_off, __global float* dx, ulong dx_off,
                __global float* ddt_d, ulong ddt_d_off, __global float* dD_p, ulong dD_p_off,
                __global float* dcs_end, ulong dcs_end_off, long L, long H, long G, int has_D, int acc_dx) {
  x += x_off; dy += dy_off; Bm += Bm_off; CB += CB_off; dtp += dtp_off; cs += cs_off;
  dstates += dstates_off; states += states_off; D += D_off; dx += dx_off; ddt_d += ddt_d_off;
  dD_p += dD_p_off; dcs_end += dcs_end_off;
  __local float cs_l[QCP], dt_l[QCP], Dt[CHUNK * DROW], ddt_l[QCP], dD_l[QCP], end_l[ITEMS];
  __local float tDY[CHUNK * CT], tG[DSTATE * CT];
  const Chunk k = chunk_of(get_group_id(0), L, H, G);
  const int lid = get_local_id(0);
  const long seq = (k.b * H + k.h) * L + k.t0;
  load_chunk_scalars(cs_l, dt_l, cs, dtp, seq, k.lc);
  for (int t = lid; t < QCP; t += ITEMS) ddt_l[t] = dD_l[t] = 0.0f;
  barrier(CLK_LOCAL_MEM_FENCE);
  build_decay(Dt, cs_l, k.lc, 1);
  const float Dh = has_D ? D[k.h] : 0.0f, cs_end = cs_l[k.lc - 1];
  const long xo = ((k.b * L + k.t0) * H + k.h) * HEADDIM;
  __global const float* X = x + xo;
  __global const float* DY = dy + xo;
  __global float* DX = dx + xo;
  __global const float* B0 = Bm + ((k.b * L + k.t0) * G + k.g) * DSTATE;
  __global const float* CBc = CB + ((k.b * G + k.g) * k.nc + k.c) * CHUNK * QCP;
  __global const float* Gc = dstates + ((k.b * H + k.h) * k.nc + k.c) * DSTATE * HEADDIM;
  __global const float* Snext = states + ((k.b * H + k.h) * k.nc + k.c + 1) * DSTATE * HEADDIM;
  vf end_dot = (vf)0.0f;  // this work-item's part of dcs_end, over the elements it stages
  for (int p0 = 0; p0 < HEADDIM; p0 += CT) {
    barrier(CLK_LOCAL_MEM_FENCE);
    STAGE_ROWS(tDY, k.lc, DY + k_ * XROW + p0, HEADDIM - p0, 1.0f);
    STAGE_ROWS(tG, DSTATE, Gc + k_ * HEADDIM + p0, HEADDIM - p0, 1.0f);
    if (k.c + 1 < k.nc)
      for (int i = lid; i < DSTATE * CTV; i += ITEMS) {
        const int n = i / CTV, c = (i % CTV) * VEC;
        if (p0 + c < HEADDIM) end_dot += VLOAD(Gc + n * HEADDIM + p0 + c) * VLOAD(Snext + n * HEADDIM + p0 + c);
      }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int rb = 0; rb < k.lc; rb += ITEMS * ROWS) {
      const int s0 = rb + lid * ROWS;
      vf acc[ROWS][CTV];
      ZERO_ACC(acc);
      ACCUMULATE(acc, tG, 0, DSTATE, s0 + r_ < k.lc ? B0[(s0 + r_) * BROW + k_] : 0.0f);
      SCALE_ROWS(acc, s0 + r_ < k.lc ? exp(cs_end - cs_l[s0 + r_]) : 0.0f);
      ACCUMULATE(acc, tDY, s0, k.lc, s0 + r_ < k.lc ? Dt[(s0 + r_) * DROW + k_] * CBc[k_ * QCP + s0 + r_] : 0.0f);
      UNROLL
      for (int r = 0; r < ROWS; ++r) {
        const int s = s0 + r;
        if (s >= k.lc) continue;
        vf ddt = (vf)0.0f, dD = (vf)0.0f;
        UNROLL
        for (int v = 0; v < CTV; ++v) {
          const int p = p0 + v * VEC;
          if (p >= HEADDIM) continue;
          const vf xv = VLOAD(X + s * XROW + p), dyv = VLOAD(DY + s * XROW + p);
          ddt += xv * acc[r][v];
          dD += xv * dyv;
          vf g = dt_l[s] * acc[r][v] + Dh * dyv;
          if (acc_dx) g += VLOAD(DX + s * XROW + p);
          VSTORE(g, DX + s * XROW + p);
        }
        ddt_l[s] += HSUM(ddt);
        dD_l[s] += HSUM(dD);
      }
    }
  }
  end_l[lid] = HSUM(end_dot);
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int t = lid; t < k.lc; t += ITEMS) ddt_d[seq + t] = ddt_l[t];
  if (lid == 0) {  // fixed-order sums
    float sum = 0.0f, end = 0.0f;
    for (int t = 0; t < k.lc; ++t) sum += dD_l[t];
    for (int i = 0; i < ITEMS; ++i) end += end_l[i];
    dD_p[(k.b * k.nc + k.c) * H + k.h] = sum;
    dcs_end[(k.b * H + k.h) * k.nc + k.c] = end;
  }
}

// W[t, s] = Dm[t, s] dtp[s] sum_p dy[t, p] x[s, p]                        (local, QC x DROW)
// dC_h[t, n] = exp(cs[t]) sum_p dy[t, p] S[n, p] + sum_{s <= t} W[t, s] B[s, n]
// dB_h[s, n] = exp(cs_end - cs[s]) dtp[s] sum_p x[s, p] G[n, p] + sum_{t >= s} W[t, s] C[t, n]
// dcs[t] = sum_n C[t, n] dC_h[t, n] - sum_n B[t, n] dB_h[t, n]
// (dcs_end, the state passing's part of the last step's gradient, comes from ssd_state_pass_bwd.)
__kernel __attribute__((reqd_work_group_size(ITEMS, 1, 1)))
void ssd_bwd_dbc(__global const float* x, ulong x_off, __global const float* dy, ulong dy_off,
                 __global const float* Bm, ulong Bm_off, __global const float* Cm, ulong Cm_off,
                 __global const float* dtp, ulong dtp_off, __global const float* cs, ulong cs_off,
                 __global const float* states, ulong states_off, __global const float* dstates, ulong dstates_off,
                 __global float* dB_h, ulong dB_h_off, __global float* dC_h, ulong dC_h_off,
                 __global float* dcs, ulong dcs_off, long L, long H, long G) {
  x += x_off; dy += dy_off; Bm += Bm_off; Cm += Cm_off; dtp += dtp_off; cs += cs_off;
  states += states_off; dstates += dstates_off; dB_h += dB_h_off; dC_h += dC_h_off; dcs += dcs_off;
  __local float cs_l[QCP], dt_l[QCP], W[CHUNK * DROW], dcs_l[QCP];
  __local float tP[HEADDIM * CT], tQ[CHUNK * CT];
  const Chunk k = chunk_of(get_group_id(0), L, H, G);
  const int lid = get_local_id(0);
  const long seq = (k.b * H + k.h) * L + k.t0;
  load_chunk_scalars(cs_l, dt_l, cs, dtp, seq, k.lc);
  for (int t = lid; t < QCP; t += ITEMS) dcs_l[t] = 0.0f;
  barrier(CLK_LOCAL_MEM_FENCE);
  build_decay(W, cs_l, k.lc, 0);
  const float cs_end = cs_l[k.lc - 1];
  const long xo = ((k.b * L + k.t0) * H + k.h) * HEADDIM, bo = ((k.b * L + k.t0) * G + k.g) * DSTATE;
  __global const float* X = x + xo;
  __global const float* DY = dy + xo;
  __global const float* B0 = Bm + bo;
  __global const float* C0 = Cm + bo;
  const long so = ((k.b * H + k.h) * k.nc + k.c) * DSTATE * HEADDIM;
  __global const float* S = states + so;
  __global const float* Gc = dstates + so;
  const long ho = ((k.b * L + k.t0) * H + k.h) * DSTATE;  // dB_h, dC_h rows: stride H * DSTATE
  // 1. W, in place over the decay matrix (each work-item rescales only its own rows).
  for (int s0 = 0; s0 < QCP; s0 += CT) {
    barrier(CLK_LOCAL_MEM_FENCE);
    STAGE_COLS(tP, HEADDIM, X + (s0 + j_) * XROW, k.lc - s0);
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int rb = 0; rb < CHUNK; rb += ITEMS * ROWS) {
      const int t0 = rb + lid * ROWS;
      vf acc[ROWS][CTV];
      ZERO_ACC(acc);
      ACCUMULATE(acc, tP, 0, HEADDIM, t0 + r_ < k.lc ? DY[(t0 + r_) * XROW + k_] : 0.0f);
      UNROLL
      for (int r = 0; r < ROWS; ++r)
        if (t0 + r < CHUNK)
          UNROLL
          for (int v = 0; v < CTV; ++v) {
            const int s = s0 + v * VEC;
            if (s >= QCP) continue;
            __local float* wp = W + (t0 + r) * DROW + s;
            VSTORE(acc[r][v] * VLOAD(wp) * VLOAD(dt_l + s), wp);
          }
    }
  }
  // 2. dC_h, N columns at a time.
  for (int n0 = 0; n0 < DSTATE; n0 += CT) {
    barrier(CLK_LOCAL_MEM_FENCE);
    STAGE_COLS(tP, HEADDIM, S + (n0 + j_) * HEADDIM, DSTATE - n0);
    STAGE_ROWS(tQ, k.lc, B0 + k_ * BROW + n0, DSTATE - n0, 1.0f);
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int rb = 0; rb < k.lc; rb += ITEMS * ROWS) {
      const int t0 = rb + lid * ROWS;
      vf acc[ROWS][CTV];
      ZERO_ACC(acc);
      ACCUMULATE(acc, tP, 0, HEADDIM, t0 + r_ < k.lc ? DY[(t0 + r_) * XROW + k_] : 0.0f);
      SCALE_ROWS(acc, t0 + r_ < k.lc ? exp(cs_l[t0 + r_]) : 0.0f);
      ACCUMULATE(acc, tQ, 0, min(k.lc, t0 + ROWS), t0 + r_ < k.lc ? W[(t0 + r_) * DROW + k_] : 0.0f);
      STORE_ROWS(acc, dC_h + ho, H * DSTATE, t0, k.lc, n0, DSTATE);
      UNROLL
      for (int r = 0; r < ROWS; ++r) {
        if (t0 + r >= k.lc) continue;
        vf d = (vf)0.0f;
        UNROLL
        for (int v = 0; v < CTV; ++v)
          if (n0 + v * VEC < DSTATE) d += VLOAD(C0 + (t0 + r) * BROW + n0 + v * VEC) * acc[r][v];
        dcs_l[t0 + r] += HSUM(d);
      }
    }
  }
  // 3. dB_h.
  for (int n0 = 0; n0 < DSTATE; n0 += CT) {
    barrier(CLK_LOCAL_MEM_FENCE);
    STAGE_COLS(tP, HEADDIM, Gc + (n0 + j_) * HEADDIM, DSTATE - n0);
    STAGE_ROWS(tQ, k.lc, C0 + k_ * BROW + n0, DSTATE - n0, 1.0f);
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int rb = 0; rb < k.lc; rb += ITEMS * ROWS) {
      const int s0 = rb + lid * ROWS;
      vf acc[ROWS][CTV];
      ZERO_ACC(acc);
      ACCUMULATE(acc, tP, 0, HEADDIM, s0 + r_ < k.lc ? X[(s0 + r_) * XROW + k_] : 0.0f);
      SCALE_ROWS(acc, s0 + r_ < k.lc ? exp(cs_end - cs_l[s0 + r_]) * dt_l[s0 + r_] : 0.0f);
      ACCUMULATE(acc, tQ, s0, k.lc, s0 + r_ < k.lc ? W[k_ * DROW + s0 + r_] : 0.0f);
      STORE_ROWS(acc, dB_h + ho, H * DSTATE, s0, k.lc, n0, DSTATE);
      UNROLL
      for (int r = 0; r < ROWS; ++r) {
        if (s0 + r >= k.lc) continue;
        vf d = (vf)0.0f;
        UNROLL
        for (int v = 0; v < CTV; ++v)
          if (n0 + v * VEC < DSTATE) d += VLOAD(B0 + (s0 + r) * BROW + n0 + v * VEC) * acc[r][v];
        dcs_l[s0 + r] -= HSUM(d);
      }
    }
  }
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int t = lid; t < k.lc; t += ITEMS) dcs[seq + t] = dcs_l[t];
}
