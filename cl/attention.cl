// Fused attention (flash-attention style), forward and backward; the math and the layouts are in
// include/magellano/ops/attention.hpp:
//   q, dq, out, dout: (B, L, H, HEADDIM)   k, v, dk, dv: (B, L, KVH, HEADDIM)
//   lse, drow: (B, H, L)     query head h reads kv head h / (H / KVH)
// Prefix-LM: with has_prefix, key s is also visible from every query when s < prefix[b] (clamped
// to [0, L]); the causal kernels then also process the key tiles (fwd, dq) and query tiles (dk/dv)
// that lie inside the prefix.
// Kernels:
//   attn_fwd       out, lse       a work-group per (b, head, query block of BQ rows); streams key
//                                 tiles of BK, online softmax
//   attn_bwd_rowdot drow = Σ_c dout ∘ out (the D of the backward), a work-item per (b, t, head)
//   attn_bwd_dq    dq             a work-group per (b, head, query block); streams key tiles
//   attn_bwd_dkdv  dk, dv         a work-group per (b, kv head, key block of BK rows); streams the
//                                 query tiles of every query head sharing the kv head (no atomics)
//   attn_fwd_rt, attn_bwd_dq_rt, attn_bwd_dkdv_rt: the same three with register tiles (the
//                                 register-tile mapping, at the end of this file); a program built
//                                 with CG holds those and attn_bwd_rowdot, one built without the others
// Every kernel is the same few products out[r, j] = Σ_c lhs(r, c) · rhs[c][j]: the block's own rows
// (lhs: queries, or keys and values for dk/dv) sit in local memory with an odd row stride (RSTRIDE,
// so work-items reading one column of different rows hit different banks); the streamed tile is
// staged transposed, rhs[c][j] (c < HEADDIM, j < the tile's columns), and read as VEC-wide vectors
// that every work-item of the group reads at once (a broadcast). A work-item owns ROWS rows
// (row lid + r · ITEMS): their scores in registers, their softmax statistics and their output
// accumulators (HEADDIM / VEC vectors per row). The products with a whole row of the streamed
// tensor (P·V, dS·K, Pᵀ·dout, dSᵀ·q) read that row straight from global memory, the same address
// for the whole group, weighted by the item's own probabilities, which it keeps in local memory
// (Ps, its own rows only, so no barrier). The two mappings are two sets of knobs
// (src/ops/attention_plan.cpp):
//   group per block (GPUs): ITEMS = rows of the block / ROWS work-items share the staged tile
//   item per block  (CPUs): ITEMS = 1, ROWS = the block's rows, wide vectors
// Knobs: HEADDIM, BQ (query rows: of a block for attn_fwd / attn_bwd_dq, of a streamed tile for
// attn_bwd_dkdv), BK (keys, likewise the other way round), ROWS (divides the block's rows), VEC
// (divides HEADDIM, BQ and BK). Local memory (floats), checked by attention_plan.cpp:
//   attn_fwd       BQ·RSTRIDE + HEADDIM·BK + BQ·(BK + 1)
//   attn_bwd_dq    2·BQ·RSTRIDE + 2·HEADDIM·BK + BQ·(BK + 1)
//   attn_bwd_dkdv  2·BK·RSTRIDE + 2·HEADDIM·BQ + BK·(BQ + 1) + 2·BQ
// Sizes are long in the signatures; positions are narrowed to int inside (the launcher checks
// L < 2^31).
#ifndef HEADDIM
#define HEADDIM 64
#endif
#ifndef BQ
#define BQ 64
#endif
#ifndef BK
#define BK 32
#endif
#ifndef ROWS
#define ROWS 1
#endif
#ifndef VEC
#define VEC 4
#endif
// Register tiles (acc[ROWS][...]) stay in registers only when their loops are fully unrolled: on
// GPUs (a row or two per work-item). With many rows per work-item (the CPU mapping) the tiles live
// in memory anyway and unrolling only multiplies PoCL's compile time (a minute per kernel). The GPU
// mapping (ROWS_INNER) keeps a register tile of a few rows per work-item: unrolled too.
#if ROWS <= 2 || defined(ROWS_INNER)
#define UNROLL _Pragma("unroll")
#else
#define UNROLL
#endif
#define NVD (HEADDIM / VEC)  // vectors per head row
#define RSTRIDE (HEADDIM + 1)  // row stride of the block's own rows in local memory
// Work-items of attn_fwd and attn_bwd_dq, and of attn_bwd_dkdv. Each kernel is built with its own
// knobs, so the program's other kernels may get a nonsense count: 1 then (they are never run).
#define ITEMS_Q (BQ >= ROWS ? BQ / ROWS : 1)
#define ITEMS_K (BK >= ROWS ? BK / ROWS : 1)

#if VEC == 1
typedef float vf;
typedef int vi;
#define VLOAD(p) (*(p))
#define VSTORE(v, p) (*(p) = (v))
#define IOTA 0
#define HSUM(v) (v)
#define HMAX(v) (v)
#elif VEC == 2
typedef float2 vf;
typedef int2 vi;
#define VLOAD(p) vload2(0, p)
#define VSTORE(v, p) vstore2(v, 0, p)
#define IOTA ((int2)(0, 1))
#define HSUM(v) ((v).s0 + (v).s1)
#define HMAX(v) fmax((v).s0, (v).s1)
#elif VEC == 4
typedef float4 vf;
typedef int4 vi;
#define VLOAD(p) vload4(0, p)
#define VSTORE(v, p) vstore4(v, 0, p)
#define IOTA ((int4)(0, 1, 2, 3))
#define HSUM(v) (((v).s0 + (v).s1) + ((v).s2 + (v).s3))
#define HMAX(v) fmax(fmax((v).s0, (v).s1), fmax((v).s2, (v).s3))
#elif VEC == 8
typedef float8 vf;
typedef int8 vi;
#define VLOAD(p) vload8(0, p)
#define VSTORE(v, p) vstore8(v, 0, p)
#define IOTA ((int8)(0, 1, 2, 3, 4, 5, 6, 7))
#define HSUM4(v) (((v).s0 + (v).s1) + ((v).s2 + (v).s3))
#define HSUM(v) (HSUM4((v).lo) + HSUM4((v).hi))
#define HMAX4(v) fmax(fmax((v).s0, (v).s1), fmax((v).s2, (v).s3))
#define HMAX(v) fmax(HMAX4((v).lo), HMAX4((v).hi))
#elif VEC == 16
typedef float16 vf;
typedef int16 vi;
#define VLOAD(p) vload16(0, p)
#define VSTORE(v, p) vstore16(v, 0, p)
#define IOTA ((int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
#define HSUM(v) hsum16(v)
#define HMAX(v) hmax16(v)
#endif

// ---- staging ---------------------------------------------------------------------------------
// dst[r][0 .. HEADDIM) (row stride RSTRIDE) = SCALE · the HEADDIM floats at ROW (using r_) for
// r_ < NVALID, zeros for NVALID <= r_ < NROWS. Vector loads, scalar-aligned stores.
#define STAGE_ROWS(dst, NROWS, NVALID, ROW, SCALE, NITEMS)                   \
  for (int i_ = get_local_id(0); i_ < (NROWS) * NVD; i_ += (NITEMS)) {     \
    const int r_ = i_ / NVD, c_ = (i_ % NVD) * VEC;                        \
    const vf x_ = r_ < (NVALID) ? VLOAD((ROW) + c_) * (vf)(SCALE) : (vf)0.0f; \
    VSTORE(x_, (dst) + r_ * RSTRIDE + c_);                                 \
  }

// The transpose: dst[c][j_] = the HEADDIM floats at ROW (using j_), for j_ < NVALID, zeros for
// NVALID <= j_ < W (dst: HEADDIM rows of W). Consecutive work-items take consecutive j_ (rows of
// the source), so their scalar stores fall in different banks.
#define STAGE_T(dst, W, NVALID, ROW, NITEMS)                                 \
  for (int i_ = get_local_id(0); i_ < (W) * NVD; i_ += (NITEMS)) {         \
    const int j_ = i_ % (W), c0_ = (i_ / (W)) * VEC;                       \
    float t_[VEC];                                                         \
    VSTORE(j_ < (NVALID) ? VLOAD((ROW) + c0_) : (vf)0.0f, t_);             \
    UNROLL for (int e_ = 0; e_ < VEC; ++e_) (dst)[(c0_ + e_) * (W) + j_] = t_[e_]; \
  }

// acc[r][j] += lhs[row(r)][c] · rhs[c][j·VEC ...] over c < HEADDIM, for the work-item's ROWS rows
// (row(r) = lid + r·NITEMS) and NJ vectors of columns; lhs with row stride RSTRIDE, rhs with W.
// Two loop orders, chosen by ROWS_INNER (src/ops/attention_plan.cpp sets it for the GPU mapping):
//   ROWS_INNER: c outermost, each streamed vector loaded once and used for all ROWS rows (a
//     register tile: ROWS·NJ fmas per NJ + ROWS local loads);
//   otherwise rows outermost, each through a pointer to its row: with the loop over c outermost and
//     many rows inside, LLVM 15 and 16 (PoCL's compilers) crash in LICM (sinkRegion) on the CPU
//     mapping's kernels.
#ifdef ROWS_INNER
#define PRODUCT(acc, lhs, rhs, W, NJ, NITEMS)                                \
  {                                                                          \
    __local const float* a_rows_[ROWS];                                      \
    UNROLL for (int r_ = 0; r_ < ROWS; ++r_) a_rows_[r_] = (lhs) + (lid + r_ * (NITEMS)) * RSTRIDE; \
    __local const float* t_ = (rhs);                                         \
    for (int c_ = 0; c_ < HEADDIM; ++c_, t_ += (W)) {                        \
      vf b_[NJ];                                                             \
      UNROLL for (int j_ = 0; j_ < (NJ); ++j_) b_[j_] = VLOAD(t_ + j_ * VEC); \
      UNROLL for (int r_ = 0; r_ < ROWS; ++r_) {                             \
        const vf a_ = (vf)a_rows_[r_][c_];                                   \
        UNROLL for (int j_ = 0; j_ < (NJ); ++j_)                             \
          acc[r_][j_] = fma(a_, b_[j_], acc[r_][j_]);                        \
      }                                                                      \
    }                                                                        \
  }
#else
#define PRODUCT(acc, lhs, rhs, W, NJ, NITEMS)                                \
  UNROLL for (int r_ = 0; r_ < ROWS; ++r_) {                                 \
    __local const float* a_row_ = (lhs) + (lid + r_ * (NITEMS)) * RSTRIDE;   \
    for (int c_ = 0; c_ < HEADDIM; ++c_) {                                   \
      const vf a_ = (vf)a_row_[c_];                                          \
      __local const float* t_ = (rhs) + c_ * (W);                            \
      UNROLL for (int j_ = 0; j_ < (NJ); ++j_)                               \
        acc[r_][j_] = fma(a_, VLOAD(t_ + j_ * VEC), acc[r_][j_]);            \
    }                                                                        \
  }
#endif

// out[r][0 .. HEADDIM) += Σ_{n < N} w[row(r)][n] · SRC(n)[0 .. HEADDIM), where w are the item's own
// rows of Ps (row stride PSTRIDE) and SRC(n) (using n_) points at a row of global memory that the
// whole group reads at once. Loop orders as PRODUCT (ROWS_INNER: each vector of the row loaded
// once for all ROWS rows).
#ifdef ROWS_INNER
#define ROW_PRODUCT(out, Ps, PSTRIDE, N, SRC, NITEMS)                        \
  for (int n_ = 0; n_ < (N); ++n_) {                                         \
    __global const float* s_ = (SRC);                                        \
    float w_[ROWS];                                                          \
    UNROLL for (int r_ = 0; r_ < ROWS; ++r_) w_[r_] = (Ps)[(lid + r_ * (NITEMS)) * (PSTRIDE) + n_]; \
    UNROLL for (int c_ = 0; c_ < NVD; ++c_) {                                \
      const vf x_ = VLOAD(s_ + c_ * VEC);                                    \
      UNROLL for (int r_ = 0; r_ < ROWS; ++r_)                               \
        out[r_][c_] = fma((vf)w_[r_], x_, out[r_][c_]);                      \
    }                                                                        \
  }
#else
#define ROW_PRODUCT(out, Ps, PSTRIDE, N, SRC, NITEMS)                        \
  UNROLL for (int r_ = 0; r_ < ROWS; ++r_) {                                 \
    __local const float* w_row_ = (Ps) + (lid + r_ * (NITEMS)) * (PSTRIDE);  \
    for (int n_ = 0; n_ < (N); ++n_) {                                       \
      __global const float* s_ = (SRC);                                      \
      const vf w_ = (vf)w_row_[n_];                                          \
      UNROLL for (int c_ = 0; c_ < NVD; ++c_)                                \
        out[r_][c_] = fma(w_, VLOAD(s_ + c_ * VEC), out[r_][c_]);            \
    }                                                                        \
  }
#endif

#define ZERO(acc, NJ)                                                        \
  UNROLL for (int r_ = 0; r_ < ROWS; ++r_)                                   \
    UNROLL for (int j_ = 0; j_ < (NJ); ++j_) acc[r_][j_] = (vf)0.0f;

// Whether key `key` may be seen from query `query` (vectors of either): in range and, when
// causal, not in the future. As a select() mask (all bits set, or 1 for VEC == 1).
#define VISIBLE(query, key, L, causal, plen) \
  (((key) < (vi)(L)) & ((query) < (vi)(L)) &   \
   (((key) <= (query)) | ((key) < (vi)(plen)) | (vi)((causal) ? 0 : -1)))

// The prefix length of batch row b, clamped to [0, L] (0 without a prefix: plain causal).
#define PREFIX_OF(b) (has_prefix ? clamp(prefix[prefix_off + (b)], 0, n) : 0)

// The block of rows a work-group owns: batch b, head h (query head, or kv head for dk/dv), first
// row r0 of nb blocks. `reverse`: the last block first (the causal forward's longest blocks start
// first).
typedef struct {
  long b, h, r0;
} Block;

inline Block block_of(long grp, long L, long heads, int rows, int reverse) {
  const long nb = (L + rows - 1) / rows;
  Block k;
  const long i = grp % nb;
  k.r0 = (reverse ? nb - 1 - i : i) * rows;
  k.h = (grp / nb) % heads;
  k.b = grp / (nb * heads);
  return k;
}

#ifndef CG  // the kernels of the group-per-block and item-per-block mappings
// ---- forward -----------------------------------------------------------------------------------
// q: (B, L, H, HEADDIM); k, v: (B, L, KVH, HEADDIM); out: like q; lse: (B, H, L).
__kernel __attribute__((reqd_work_group_size(ITEMS_Q, 1, 1)))
void attn_fwd(__global const float* q, ulong q_off, __global const float* k, ulong k_off,
              __global const float* v, ulong v_off, __global float* out, ulong out_off,
              __global float* lse, ulong lse_off, long L, long H, long KVH, float scale, int causal, __global const int* prefix, ulong prefix_off, int has_prefix) {
  q += q_off; k += k_off; v += v_off; out += out_off; lse += lse_off;
  __local float Qs[BQ * RSTRIDE];        // the block's queries, times scale
  __local vf Kt_[HEADDIM * BK / VEC];    // a key tile, transposed (vectors: aligned loads)
  __local float* Kt = (__local float*)Kt_;
  __local float Ps[BQ * (BK + 1)];       // each item's probabilities of the tile (its rows)
  const Block blk = block_of(get_group_id(0), L, H, BQ, causal);
  const int lid = get_local_id(0);
  const int n = (int)L, q0 = (int)blk.r0, nq = min(BQ, n - q0);
  const int plen = PREFIX_OF(blk.b);  // keys < plen are seen by every query
  const long kvh = blk.h / (H / KVH);
  const long qstride = H * HEADDIM, kstride = KVH * HEADDIM;  // between positions
  __global const float* Q0 = q + ((blk.b * L + q0) * H + blk.h) * HEADDIM;
  __global const float* K0 = k + (blk.b * L * KVH + kvh) * HEADDIM;  // position 0
  __global const float* V0 = v + (blk.b * L * KVH + kvh) * HEADDIM;
  STAGE_ROWS(Qs, BQ, nq, Q0 + r_ * qstride, scale, ITEMS_Q);
  float m[ROWS], l[ROWS];
  vf o[ROWS][NVD];
  UNROLL for (int r = 0; r < ROWS; ++r) m[r] = -FLT_MAX, l[r] = 0.0f;
  ZERO(o, NVD);
  const int kend = causal ? min(n, max(q0 + BQ, plen)) : n;  // keys any row of the block sees
  for (int k0 = 0; k0 < kend; k0 += BK) {
    const int nk = min(BK, kend - k0);
    barrier(CLK_LOCAL_MEM_FENCE);
    STAGE_T(Kt, BK, nk, K0 + (long)(k0 + j_) * kstride, ITEMS_Q);
    barrier(CLK_LOCAL_MEM_FENCE);
    vf s[ROWS][BK / VEC];
    ZERO(s, BK / VEC);
    PRODUCT(s, Qs, Kt, BK, BK / VEC, ITEMS_Q);
    // Online softmax: the new running max, the rescale of what was summed so far, this tile's
    // probabilities (0 where not visible).
    UNROLL for (int r = 0; r < ROWS; ++r) {
      const vi query = (vi)(q0 + lid + r * ITEMS_Q);
      vf mx = (vf)(-FLT_MAX);
      UNROLL for (int j = 0; j < BK / VEC; ++j) {
        const vi key = (vi)(k0 + j * VEC) + IOTA;
        s[r][j] = select((vf)(-FLT_MAX), s[r][j], VISIBLE(query, key, n, causal, plen));
        mx = fmax(mx, s[r][j]);
      }
      const float m_new = fmax(m[r], HMAX(mx));
      const float alpha = exp(m[r] - m_new);
      vf sum = (vf)0.0f;
      UNROLL for (int j = 0; j < BK / VEC; ++j) {
        const vi key = (vi)(k0 + j * VEC) + IOTA;
        const vf p = select((vf)0.0f, exp(s[r][j] - (vf)m_new), VISIBLE(query, key, n, causal, plen));
        sum += p;
        VSTORE(p, Ps + (lid + r * ITEMS_Q) * (BK + 1) + j * VEC);
      }
      l[r] = l[r] * alpha + HSUM(sum);
      m[r] = m_new;
      UNROLL for (int c = 0; c < NVD; ++c) o[r][c] *= (vf)alpha;
    }
    ROW_PRODUCT(o, Ps, BK + 1, nk, V0 + (long)(k0 + n_) * kstride, ITEMS_Q);
  }
  UNROLL for (int r = 0; r < ROWS; ++r) {
    const int t = q0 + lid + r * ITEMS_Q;
    if (t >= n) continue;
    const vf inv = (vf)(1.0f / l[r]);
    __global float* O = out + ((blk.b * L + t) * H + blk.h) * HEADDIM;
    UNROLL for (int c = 0; c < NVD; ++c) VSTORE(o[r][c] * inv, O + c * VEC);
    lse[(blk.b * H + blk.h) * L + t] = m[r] + log(l[r]);
  }
}

#endif

// ---- backward ----------------------------------------------------------------------------------
// drow (B, H, L) = Σ_c dout ∘ out over each row of (B, L, H, HEADDIM).
__kernel void attn_bwd_rowdot(__global const float* dout, ulong dout_off, __global const float* out,
                              ulong out_off, __global float* drow, ulong drow_off, long B, long L, long H) {
  dout += dout_off; out += out_off; drow += drow_off;
  const long i = get_global_id(0);  // (b, t, h) row of out
  if (i >= B * L * H) return;
  const long h = i % H, t = (i / H) % L, b = i / (H * L);
  vf sum = (vf)0.0f;
  for (int c = 0; c < NVD; ++c) sum = fma(VLOAD(dout + i * HEADDIM + c * VEC), VLOAD(out + i * HEADDIM + c * VEC), sum);
  drow[(b * H + h) * L + t] = HSUM(sum);
}

#ifndef CG
// dq (like q) = scale · Σ_s dS[t, s] k[s], dS = P ∘ (dP - D), P = exp(scale · q kᵀ - lse),
// dP = dout vᵀ. acc: add to dq.
__kernel __attribute__((reqd_work_group_size(ITEMS_Q, 1, 1)))
void attn_bwd_dq(__global const float* q, ulong q_off, __global const float* k, ulong k_off,
                 __global const float* v, ulong v_off, __global const float* dout, ulong dout_off,
                 __global const float* lse, ulong lse_off, __global const float* drow, ulong drow_off,
                 __global float* dq, ulong dq_off, long L, long H, long KVH, float scale, int causal, int acc, __global const int* prefix, ulong prefix_off, int has_prefix) {
  q += q_off; k += k_off; v += v_off; dout += dout_off; lse += lse_off; drow += drow_off; dq += dq_off;
  __local float Qs[BQ * RSTRIDE], dOs[BQ * RSTRIDE];  // the block's queries and output gradients
  __local vf Kt_[HEADDIM * BK / VEC], Vt_[HEADDIM * BK / VEC];  // a key tile and its values, transposed
  __local float *Kt = (__local float*)Kt_, *Vt = (__local float*)Vt_;
  __local float Ps[BQ * (BK + 1)];                    // each item's dS of the tile
  const Block blk = block_of(get_group_id(0), L, H, BQ, causal);
  const int lid = get_local_id(0);
  const int n = (int)L, q0 = (int)blk.r0, nq = min(BQ, n - q0);
  const int plen = PREFIX_OF(blk.b);  // keys < plen are seen by every query
  const long kvh = blk.h / (H / KVH);
  const long qstride = H * HEADDIM, kstride = KVH * HEADDIM;
  const long first = (blk.b * L + q0) * H + blk.h;  // the block's first row of q
  __global const float* K0 = k + (blk.b * L * KVH + kvh) * HEADDIM;
  __global const float* V0 = v + (blk.b * L * KVH + kvh) * HEADDIM;
  STAGE_ROWS(Qs, BQ, nq, q + first * HEADDIM + r_ * qstride, 1.0f, ITEMS_Q);
  STAGE_ROWS(dOs, BQ, nq, dout + first * HEADDIM + r_ * qstride, 1.0f, ITEMS_Q);
  float row_lse[ROWS], row_d[ROWS];
  UNROLL for (int r = 0; r < ROWS; ++r) {
    const int t = q0 + lid + r * ITEMS_Q;
    row_lse[r] = t < n ? lse[(blk.b * H + blk.h) * L + t] : 0.0f;
    row_d[r] = t < n ? drow[(blk.b * H + blk.h) * L + t] : 0.0f;
  }
  vf g[ROWS][NVD];
  ZERO(g, NVD);
  const int kend = causal ? min(n, max(q0 + BQ, plen)) : n;
  for (int k0 = 0; k0 < kend; k0 += BK) {
    const int nk = min(BK, kend - k0);
    barrier(CLK_LOCAL_MEM_FENCE);
    STAGE_T(Kt, BK, nk, K0 + (long)(k0 + j_) * kstride, ITEMS_Q);
    STAGE_T(Vt, BK, nk, V0 + (long)(k0 + j_) * kstride, ITEMS_Q);
    barrier(CLK_LOCAL_MEM_FENCE);
    vf s[ROWS][BK / VEC], dp[ROWS][BK / VEC];
    ZERO(s, BK / VEC);
    ZERO(dp, BK / VEC);
    PRODUCT(s, Qs, Kt, BK, BK / VEC, ITEMS_Q);
    PRODUCT(dp, dOs, Vt, BK, BK / VEC, ITEMS_Q);
    UNROLL for (int r = 0; r < ROWS; ++r) {
      const vi query = (vi)(q0 + lid + r * ITEMS_Q);
      UNROLL for (int j = 0; j < BK / VEC; ++j) {
        const vi key = (vi)(k0 + j * VEC) + IOTA;
        const vf p = select((vf)0.0f, exp(s[r][j] * (vf)scale - (vf)row_lse[r]), VISIBLE(query, key, n, causal, plen));
        VSTORE(p * (dp[r][j] - (vf)row_d[r]), Ps + (lid + r * ITEMS_Q) * (BK + 1) + j * VEC);
      }
    }
    ROW_PRODUCT(g, Ps, BK + 1, nk, K0 + (long)(k0 + n_) * kstride, ITEMS_Q);
  }
  UNROLL for (int r = 0; r < ROWS; ++r) {
    const int t = q0 + lid + r * ITEMS_Q;
    if (t >= n) continue;
    __global float* G = dq + ((blk.b * L + t) * H + blk.h) * HEADDIM;
    UNROLL for (int c = 0; c < NVD; ++c) {
      const vf x = g[r][c] * (vf)scale;
      VSTORE(acc ? VLOAD(G + c * VEC) + x : x, G + c * VEC);
    }
  }
}

// dk (like k) = scale · Σ dSᵀ q, dv = Σ Pᵀ dout, summed over the query heads h of kv head kvh
// (h / (H / KVH) == kvh) in order, and over their query blocks in order. acc_k, acc_v: add.
__kernel __attribute__((reqd_work_group_size(ITEMS_K, 1, 1)))
void attn_bwd_dkdv(__global const float* q, ulong q_off, __global const float* k, ulong k_off,
                   __global const float* v, ulong v_off, __global const float* dout, ulong dout_off,
                   __global const float* lse, ulong lse_off, __global const float* drow, ulong drow_off,
                   __global float* dk, ulong dk_off, __global float* dv, ulong dv_off, long L, long H,
                   long KVH, float scale, int causal, int acc_k, int acc_v, __global const int* prefix, ulong prefix_off, int has_prefix) {
  q += q_off; k += k_off; v += v_off; dout += dout_off; lse += lse_off; drow += drow_off;
  dk += dk_off; dv += dv_off;
  __local float Ks[BK * RSTRIDE], Vs[BK * RSTRIDE];  // the block's keys and values
  __local vf Qt_[HEADDIM * BQ / VEC], dOt_[HEADDIM * BQ / VEC];  // a query tile and its output gradients, transposed
  __local float *Qt = (__local float*)Qt_, *dOt = (__local float*)dOt_;
  __local float Ps[BK * (BQ + 1)];                   // each item's Pᵀ, then dSᵀ, of the tile
  __local vf lse_v[BQ / VEC], d_v[BQ / VEC];
  __local float *lse_s = (__local float*)lse_v, *d_s = (__local float*)d_v;
  const Block blk = block_of(get_group_id(0), L, KVH, BK, 0);  // blk.h: the kv head
  const int lid = get_local_id(0);
  const int n = (int)L, k0 = (int)blk.r0, nk = min(BK, n - k0);
  const int plen = PREFIX_OF(blk.b);  // keys < plen are seen by every query
  const long group = H / KVH;  // query heads per kv head
  const long qstride = H * HEADDIM, kstride = KVH * HEADDIM;
  const long first = (blk.b * L + k0) * KVH + blk.h;  // the block's first row of k
  STAGE_ROWS(Ks, BK, nk, k + first * HEADDIM + r_ * kstride, 1.0f, ITEMS_K);
  STAGE_ROWS(Vs, BK, nk, v + first * HEADDIM + r_ * kstride, 1.0f, ITEMS_K);
  vf gk[ROWS][NVD], gv[ROWS][NVD];
  ZERO(gk, NVD);
  ZERO(gv, NVD);
  const int qstart = causal && k0 >= plen ? k0 / BQ * BQ : 0;  // earlier query tiles see none of these keys
  for (long hq = blk.h * group; hq < (blk.h + 1) * group; ++hq) {
    __global const float* Q0 = q + (blk.b * L * H + hq) * HEADDIM;  // position 0 of head hq
    __global const float* dO0 = dout + (blk.b * L * H + hq) * HEADDIM;
    __global const float* lse0 = lse + (blk.b * H + hq) * L;
    __global const float* d0 = drow + (blk.b * H + hq) * L;
    for (int q0 = qstart; q0 < n; q0 += BQ) {
      const int nq = min(BQ, n - q0);
      barrier(CLK_LOCAL_MEM_FENCE);
      STAGE_T(Qt, BQ, nq, Q0 + (long)(q0 + j_) * qstride, ITEMS_K);
      STAGE_T(dOt, BQ, nq, dO0 + (long)(q0 + j_) * qstride, ITEMS_K);
      for (int i = lid; i < BQ; i += ITEMS_K) {
        lse_s[i] = i < nq ? lse0[q0 + i] : 0.0f;
        d_s[i] = i < nq ? d0[q0 + i] : 0.0f;
      }
      barrier(CLK_LOCAL_MEM_FENCE);
      vf st[ROWS][BQ / VEC], dpt[ROWS][BQ / VEC];  // Sᵀ and dPᵀ of the item's keys
      ZERO(st, BQ / VEC);
      ZERO(dpt, BQ / VEC);
      PRODUCT(st, Ks, Qt, BQ, BQ / VEC, ITEMS_K);
      PRODUCT(dpt, Vs, dOt, BQ, BQ / VEC, ITEMS_K);
      UNROLL for (int r = 0; r < ROWS; ++r) {
        const vi key = (vi)(k0 + lid + r * ITEMS_K);
        __local float* P = Ps + (lid + r * ITEMS_K) * (BQ + 1);
        UNROLL for (int j = 0; j < BQ / VEC; ++j) {
          const vi query = (vi)(q0 + j * VEC) + IOTA;
          const vf p = select((vf)0.0f, exp(st[r][j] * (vf)scale - VLOAD(lse_s + j * VEC)),
                              VISIBLE(query, key, n, causal, plen));
          VSTORE(p, P + j * VEC);
          dpt[r][j] = p * (dpt[r][j] - VLOAD(d_s + j * VEC));  // dSᵀ, kept until dv is done
        }
      }
      ROW_PRODUCT(gv, Ps, BQ + 1, nq, dO0 + (long)(q0 + n_) * qstride, ITEMS_K);
      UNROLL for (int r = 0; r < ROWS; ++r)
        UNROLL for (int j = 0; j < BQ / VEC; ++j) VSTORE(dpt[r][j], Ps + (lid + r * ITEMS_K) * (BQ + 1) + j * VEC);
      ROW_PRODUCT(gk, Ps, BQ + 1, nq, Q0 + (long)(q0 + n_) * qstride, ITEMS_K);
    }
  }
  UNROLL for (int r = 0; r < ROWS; ++r) {
    const int s = k0 + lid + r * ITEMS_K;
    if (s >= n) continue;
    const long row = ((blk.b * L + s) * KVH + blk.h) * HEADDIM;
    UNROLL for (int c = 0; c < NVD; ++c) {
      const vf xk = gk[r][c] * (vf)scale, xv = gv[r][c];
      VSTORE(acc_k ? VLOAD(dk + row + c * VEC) + xk : xk, dk + row + c * VEC);
      VSTORE(acc_v ? VLOAD(dv + row + c * VEC) + xv : xv, dv + row + c * VEC);
    }
  }
}
#endif  // !CG

// ---- the register-tile mapping (AttentionMapping::register_tiles) --------------------------------
// attn_fwd_rt, attn_bwd_dq_rt, attn_bwd_dkdv_rt: the same products, arguments and results as the
// kernels above, laid out like a GEMM so that every value a work-item
// loads from local memory feeds several multiply-adds:
// A work-group owns a block of rows (queries for attn_fwd_rt / attn_bwd_dq_rt, keys for
// attn_bwd_dkdv_rt) and streams tiles of the other side. Its work-items form a grid of row groups
// x CG column groups: item (rg, cg) owns the block's rows 4·rg .. 4·rg + 3 and, of each streamed
// tile, the columns 4·cg .. 4·cg + 3, so a score tile (rows x 4·CG) is 4 x 4 registers per item,
// computed from two float4 loads per step of the head width (both operands staged transposed,
// c-major, in local memory). The output accumulators (rows x HEADDIM) are split the same way: item
// cg owns the float4 column groups v·CG + cg (v < NDV), NDV = HEADDIM / (4·CG). Probabilities (or
// dS) go through local memory, transposed (column-major in the block's rows), so the second product
// reads one float4 of four rows' weights per streamed row, and that row of v (or k, q, dout) from
// global memory: every item of a warp reads the same row, consecutive items consecutive float4s.
// Row statistics: each item has the maximum of its 4 columns; the CG items of a row group agree on
// the row's maximum through local memory (red), in a fixed order; sums stay per item and are added
// in order at the end. Deterministic, no atomics.
// Knobs: HEADDIM, BQ (query rows: of a block for attn_fwd_rt / attn_bwd_dq_rt, of a streamed tile
// for attn_bwd_dkdv_rt), BK (keys, likewise the other way round), CG (column groups: the streamed
// tile is 4·CG wide, so BK = 4·CG for the query kernels and BQ = 4·CG for dk/dv). The block's rows
// are a multiple of 4; 4·CG divides HEADDIM. Local memory (floats), checked by attention_plan.cpp:
//   attn_fwd_rt       HEADDIM·BQ + HEADDIM·BK + BK·BQ + BQ·CG
//   attn_bwd_dq_rt    2·HEADDIM·BQ + 2·HEADDIM·BK + BK·BQ
//   attn_bwd_dkdv_rt  2·HEADDIM·BK + 2·HEADDIM·BQ + 2·BQ·BK + 2·BQ
#ifdef CG  // built with CG: the register-tile kernels only
#define NDV (HEADDIM / (4 * CG))  // float4 column groups of the accumulators per item
// Work-items: row groups x column groups (built with another mapping's knobs, a kernel may get a
// nonsense count; it is never run with those knobs).
#define ITEMS_QT (BQ >= 4 ? BQ / 4 * CG : 1)
#define ITEMS_KT (BK >= 4 ? BK / 4 * CG : 1)

// VISIBLE for int4 (these kernels' vectors are float4 whatever VEC the program was built with).
#define VISIBLE4(query, key, L, causal, plen) \
  (((key) < (int4)(L)) & ((query) < (int4)(L)) &   \
   (((key) <= (query)) | ((key) < (int4)(plen)) | (int4)((causal) ? 0 : -1)))

// dst[c·W + j] = SCALE · (row j of the source)[c] for j < NVALID, 0 for NVALID <= j < W, c < HEADDIM:
// a block or tile staged transposed. ROW (using j_) points at row j_. Consecutive work-items take
// consecutive rows j_, so their scalar stores fall in different banks.
#define STAGE_T4(dst, W, NVALID, ROW, SCALE, NITEMS)                                         \
  for (int i_ = get_local_id(0); i_ < (W) * (HEADDIM / 4); i_ += (NITEMS)) {                         \
    const int j_ = i_ % (W), c0_ = (i_ / (W)) * 4;                                         \
    const float4 x_ = j_ < (NVALID) ? vload4(0, (ROW) + c0_) * (SCALE) : (float4)0.0f;     \
    (dst)[(c0_ + 0) * (W) + j_] = x_.s0;                                                   \
    (dst)[(c0_ + 1) * (W) + j_] = x_.s1;                                                   \
    (dst)[(c0_ + 2) * (W) + j_] = x_.s2;                                                   \
    (dst)[(c0_ + 3) * (W) + j_] = x_.s3;                                                   \
  }

// s[r] (the item's 4 columns of row r) += Σ_c A[c][arow + r] · B[c][bcol .. bcol + 3] over
// c < HEADDIM, for r < 4: A (row width AW) and B (BW) transposed in local memory, viewed as float4.
#define TILE_PRODUCT(s, A4, AW, arow, B4, BW, bcol)                                          \
  for (int c_ = 0; c_ < HEADDIM; ++c_) {                                                   \
    const float4 a_ = (A4)[(c_ * (AW) + (arow)) / 4];                                      \
    const float4 b_ = (B4)[(c_ * (BW) + (bcol)) / 4];                                      \
    s[0] = fma((float4)a_.s0, b_, s[0]);                                                   \
    s[1] = fma((float4)a_.s1, b_, s[1]);                                                   \
    s[2] = fma((float4)a_.s2, b_, s[2]);                                                   \
    s[3] = fma((float4)a_.s3, b_, s[3]);                                                   \
  }

// acc[r][v] += Σ_n W[n][wrow + r] · SRC(n)[(v·CG + cg)·4 ..] over n < N: W the weights in local
// memory (row width WW, float4 view), SRC(n) (using n_) a row in global memory.
#define ROWS_PRODUCT(acc, W4, WW, wrow, N, SRC)                                              \
  for (int n_ = 0; n_ < (N); ++n_) {                                                       \
    const float4 w_ = (W4)[(n_ * (WW) + (wrow)) / 4];                                      \
    __global const float* x_ = (SRC);                                                      \
    _Pragma("unroll") for (int v_ = 0; v_ < NDV; ++v_) {                                   \
      const float4 b_ = vload4(0, x_ + (v_ * CG + cg) * 4);                                \
      acc[0][v_] = fma((float4)w_.s0, b_, acc[0][v_]);                                     \
      acc[1][v_] = fma((float4)w_.s1, b_, acc[1][v_]);                                     \
      acc[2][v_] = fma((float4)w_.s2, b_, acc[2][v_]);                                     \
      acc[3][v_] = fma((float4)w_.s3, b_, acc[3][v_]);                                     \
    }                                                                                      \
  }

// The item's 4 x 4 tile x[r].s<e> stored transposed: dst[(col0 + e)·WW + row0 + r] (float4 view).
#define STORE_T(dst4, WW, row0, col0, x)                                                     \
  _Pragma("unroll") for (int e_ = 0; e_ < 4; ++e_)                                         \
    (dst4)[((col0 + e_) * (WW) + (row0)) / 4] =                                            \
        (float4)(x[0][e_], x[1][e_], x[2][e_], x[3][e_]);

#define ZERO_ACC(acc)                                                                        \
  _Pragma("unroll") for (int r_ = 0; r_ < 4; ++r_)                                         \
    _Pragma("unroll") for (int v_ = 0; v_ < NDV; ++v_) acc[r_][v_] = (float4)0.0f;

inline float hmax4(float4 v) { return fmax(fmax(v.s0, v.s1), fmax(v.s2, v.s3)); }
inline float hsum4(float4 v) { return (v.s0 + v.s1) + (v.s2 + v.s3); }

// ---- forward -----------------------------------------------------------------------------------
__kernel __attribute__((reqd_work_group_size(ITEMS_QT, 1, 1)))
void attn_fwd_rt(__global const float* q, ulong q_off, __global const float* k, ulong k_off,
                 __global const float* v, ulong v_off, __global float* out, ulong out_off,
                 __global float* lse, ulong lse_off, long L, long H, long KVH, float scale, int causal, __global const int* prefix, ulong prefix_off, int has_prefix) {
  q += q_off; k += k_off; v += v_off; out += out_off; lse += lse_off;
  __local float4 Qt4[HEADDIM * BQ / 4];  // Qt[c][r]: the block's queries times scale, transposed
  __local float4 Kt4[HEADDIM * BK / 4];  // Kt[c][j]: a key tile, transposed
  __local float4 Pt4[BK * BQ / 4];       // Pt[j][r]: the tile's probabilities
  __local float red[BQ * CG];            // red[r·CG + g]: item g's partial maximum (then sum) of row r
  const Block blk = block_of(get_group_id(0), L, H, BQ, causal);
  const int lid = get_local_id(0), cg = lid % CG, r0 = (lid / CG) * 4;
  const int n = (int)L, q0 = (int)blk.r0, nq = min(BQ, n - q0);
  const int plen = PREFIX_OF(blk.b);  // keys < plen are seen by every query
  const long kvh = blk.h / (H / KVH);
  const long qstride = H * HEADDIM, kstride = KVH * HEADDIM;  // between positions
  __global const float* Q0 = q + ((blk.b * L + q0) * H + blk.h) * HEADDIM;
  __global const float* K0 = k + (blk.b * L * KVH + kvh) * HEADDIM;  // position 0
  __global const float* V0 = v + (blk.b * L * KVH + kvh) * HEADDIM;
  STAGE_T4((__local float*)Qt4, BQ, nq, Q0 + (long)j_ * qstride, scale, ITEMS_QT);
  float m[4], lp[4];  // running maximum of each row; this item's share of its sum
  float4 o[4][NDV];
  _Pragma("unroll") for (int r = 0; r < 4; ++r) m[r] = -FLT_MAX, lp[r] = 0.0f;
  ZERO_ACC(o);
  const int kend = causal ? min(n, max(q0 + BQ, plen)) : n;
  for (int k0 = 0; k0 < kend; k0 += BK) {
    const int nk = min(BK, kend - k0);
    barrier(CLK_LOCAL_MEM_FENCE);
    STAGE_T4((__local float*)Kt4, BK, nk, K0 + (long)(k0 + j_) * kstride, 1.0f, ITEMS_QT);
    barrier(CLK_LOCAL_MEM_FENCE);
    float4 s[4] = {(float4)0.0f, (float4)0.0f, (float4)0.0f, (float4)0.0f};
    TILE_PRODUCT(s, Qt4, BQ, r0, Kt4, BK, cg * 4);
    const int4 key = (int4)(k0 + cg * 4) + (int4)(0, 1, 2, 3);
    int4 vis[4];
    _Pragma("unroll") for (int r = 0; r < 4; ++r) {
      vis[r] = VISIBLE4((int4)(q0 + r0 + r), key, n, causal, plen);
      s[r] = select((float4)(-FLT_MAX), s[r], vis[r]);
      red[(r0 + r) * CG + cg] = hmax4(s[r]);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    float p[4][4];
    _Pragma("unroll") for (int r = 0; r < 4; ++r) {
      float mx = m[r];
      for (int g = 0; g < CG; ++g) mx = fmax(mx, red[(r0 + r) * CG + g]);
      const float alpha = exp(m[r] - mx);
      const float4 pr = select((float4)0.0f, exp(s[r] - (float4)mx), vis[r]);
      lp[r] = lp[r] * alpha + hsum4(pr);
      m[r] = mx;
      _Pragma("unroll") for (int c = 0; c < NDV; ++c) o[r][c] *= (float4)alpha;
      p[r][0] = pr.s0, p[r][1] = pr.s1, p[r][2] = pr.s2, p[r][3] = pr.s3;
    }
    STORE_T(Pt4, BQ, r0, cg * 4, p);
    barrier(CLK_LOCAL_MEM_FENCE);
    ROWS_PRODUCT(o, Pt4, BQ, r0, nk, V0 + (long)(k0 + n_) * kstride);
  }
  barrier(CLK_LOCAL_MEM_FENCE);
  _Pragma("unroll") for (int r = 0; r < 4; ++r) red[(r0 + r) * CG + cg] = lp[r];
  barrier(CLK_LOCAL_MEM_FENCE);
  _Pragma("unroll") for (int r = 0; r < 4; ++r) {
    const int t = q0 + r0 + r;
    if (t >= n) continue;
    float l = 0.0f;
    for (int g = 0; g < CG; ++g) l += red[(r0 + r) * CG + g];
    const float4 inv = (float4)(1.0f / l);
    __global float* O = out + ((blk.b * L + t) * H + blk.h) * HEADDIM;
    _Pragma("unroll") for (int c = 0; c < NDV; ++c) vstore4(o[r][c] * inv, 0, O + (c * CG + cg) * 4);
    if (cg == 0) lse[(blk.b * H + blk.h) * L + t] = m[r] + log(l);
  }
}

// ---- backward ----------------------------------------------------------------------------------
// dq (like q) = scale · Σ_s dS[t, s] k[s], dS = P ∘ (dP - D), P = exp(scale · q kᵀ - lse),
// dP = dout vᵀ. acc: add to dq.
__kernel __attribute__((reqd_work_group_size(ITEMS_QT, 1, 1)))
void attn_bwd_dq_rt(__global const float* q, ulong q_off, __global const float* k, ulong k_off,
                    __global const float* v, ulong v_off, __global const float* dout, ulong dout_off,
                    __global const float* lse, ulong lse_off, __global const float* drow, ulong drow_off,
                    __global float* dq, ulong dq_off, long L, long H, long KVH, float scale, int causal,
                    int acc, __global const int* prefix, ulong prefix_off, int has_prefix) {
  q += q_off; k += k_off; v += v_off; dout += dout_off; lse += lse_off; drow += drow_off; dq += dq_off;
  __local float4 Qt4[HEADDIM * BQ / 4], dOt4[HEADDIM * BQ / 4];  // the block's queries, output gradients
  __local float4 Kt4[HEADDIM * BK / 4], Vt4[HEADDIM * BK / 4];   // a key tile and its values
  __local float4 dSt4[BK * BQ / 4];                              // dSt[j][r]: the tile's dS
  const Block blk = block_of(get_group_id(0), L, H, BQ, causal);
  const int lid = get_local_id(0), cg = lid % CG, r0 = (lid / CG) * 4;
  const int n = (int)L, q0 = (int)blk.r0, nq = min(BQ, n - q0);
  const int plen = PREFIX_OF(blk.b);  // keys < plen are seen by every query
  const long kvh = blk.h / (H / KVH);
  const long qstride = H * HEADDIM, kstride = KVH * HEADDIM;
  const long first = (blk.b * L + q0) * H + blk.h;  // the block's first row of q
  __global const float* K0 = k + (blk.b * L * KVH + kvh) * HEADDIM;
  __global const float* V0 = v + (blk.b * L * KVH + kvh) * HEADDIM;
  STAGE_T4((__local float*)Qt4, BQ, nq, q + first * HEADDIM + (long)j_ * qstride, 1.0f, ITEMS_QT);
  STAGE_T4((__local float*)dOt4, BQ, nq, dout + first * HEADDIM + (long)j_ * qstride, 1.0f, ITEMS_QT);
  float row_lse[4], row_d[4];
  _Pragma("unroll") for (int r = 0; r < 4; ++r) {
    const int t = q0 + r0 + r;
    row_lse[r] = t < n ? lse[(blk.b * H + blk.h) * L + t] : 0.0f;
    row_d[r] = t < n ? drow[(blk.b * H + blk.h) * L + t] : 0.0f;
  }
  float4 g[4][NDV];
  ZERO_ACC(g);
  const int kend = causal ? min(n, max(q0 + BQ, plen)) : n;
  for (int k0 = 0; k0 < kend; k0 += BK) {
    const int nk = min(BK, kend - k0);
    barrier(CLK_LOCAL_MEM_FENCE);
    STAGE_T4((__local float*)Kt4, BK, nk, K0 + (long)(k0 + j_) * kstride, 1.0f, ITEMS_QT);
    STAGE_T4((__local float*)Vt4, BK, nk, V0 + (long)(k0 + j_) * kstride, 1.0f, ITEMS_QT);
    barrier(CLK_LOCAL_MEM_FENCE);
    float4 s[4] = {(float4)0.0f, (float4)0.0f, (float4)0.0f, (float4)0.0f};
    float4 dp[4] = {(float4)0.0f, (float4)0.0f, (float4)0.0f, (float4)0.0f};
    TILE_PRODUCT(s, Qt4, BQ, r0, Kt4, BK, cg * 4);
    TILE_PRODUCT(dp, dOt4, BQ, r0, Vt4, BK, cg * 4);
    const int4 key = (int4)(k0 + cg * 4) + (int4)(0, 1, 2, 3);
    float ds[4][4];
    _Pragma("unroll") for (int r = 0; r < 4; ++r) {
      const int4 vis = VISIBLE4((int4)(q0 + r0 + r), key, n, causal, plen);
      const float4 p = select((float4)0.0f, exp(s[r] * (float4)scale - (float4)row_lse[r]), vis);
      const float4 x = p * (dp[r] - (float4)row_d[r]);
      ds[r][0] = x.s0, ds[r][1] = x.s1, ds[r][2] = x.s2, ds[r][3] = x.s3;
    }
    STORE_T(dSt4, BQ, r0, cg * 4, ds);
    barrier(CLK_LOCAL_MEM_FENCE);
    ROWS_PRODUCT(g, dSt4, BQ, r0, nk, K0 + (long)(k0 + n_) * kstride);
  }
  _Pragma("unroll") for (int r = 0; r < 4; ++r) {
    const int t = q0 + r0 + r;
    if (t >= n) continue;
    __global float* G = dq + ((blk.b * L + t) * H + blk.h) * HEADDIM;
    _Pragma("unroll") for (int c = 0; c < NDV; ++c) {
      __global float* at = G + (c * CG + cg) * 4;
      const float4 x = g[r][c] * (float4)scale;
      vstore4(acc ? vload4(0, at) + x : x, 0, at);
    }
  }
}

// dk (like k) = scale · Σ dSᵀ q, dv = Σ Pᵀ dout, summed over the query heads sharing the kv head
// in order, and over their query tiles in order. acc_k, acc_v: add.
__kernel __attribute__((reqd_work_group_size(ITEMS_KT, 1, 1)))
void attn_bwd_dkdv_rt(__global const float* q, ulong q_off, __global const float* k, ulong k_off,
                      __global const float* v, ulong v_off, __global const float* dout, ulong dout_off,
                      __global const float* lse, ulong lse_off, __global const float* drow, ulong drow_off,
                      __global float* dk, ulong dk_off, __global float* dv, ulong dv_off, long L, long H,
                      long KVH, float scale, int causal, int acc_k, int acc_v, __global const int* prefix, ulong prefix_off, int has_prefix) {
  q += q_off; k += k_off; v += v_off; dout += dout_off; lse += lse_off; drow += drow_off;
  dk += dk_off; dv += dv_off;
  __local float4 Kt4[HEADDIM * BK / 4], Vt4[HEADDIM * BK / 4];   // the block's keys and values
  __local float4 Qt4[HEADDIM * BQ / 4], dOt4[HEADDIM * BQ / 4];  // a query tile, its output gradients
  __local float4 Pq4[BQ * BK / 4], dSq4[BQ * BK / 4];            // P[q][key], dS[q][key] of the tile
  __local float4 lse4[(BQ + 3) / 4], d4[(BQ + 3) / 4];
  __local float *lse_s = (__local float*)lse4, *d_s = (__local float*)d4;
  const Block blk = block_of(get_group_id(0), L, KVH, BK, 0);  // blk.h: the kv head
  const int lid = get_local_id(0), cg = lid % CG, r0 = (lid / CG) * 4;
  const int n = (int)L, k0 = (int)blk.r0, nk = min(BK, n - k0);
  const int plen = PREFIX_OF(blk.b);  // keys < plen are seen by every query
  const long group = H / KVH;  // query heads per kv head
  const long qstride = H * HEADDIM, kstride = KVH * HEADDIM;
  const long first = (blk.b * L + k0) * KVH + blk.h;  // the block's first row of k
  STAGE_T4((__local float*)Kt4, BK, nk, k + first * HEADDIM + (long)j_ * kstride, 1.0f, ITEMS_KT);
  STAGE_T4((__local float*)Vt4, BK, nk, v + first * HEADDIM + (long)j_ * kstride, 1.0f, ITEMS_KT);
  float4 gk[4][NDV], gv[4][NDV];
  ZERO_ACC(gk);
  ZERO_ACC(gv);
  const int qstart = causal && k0 >= plen ? k0 / BQ * BQ : 0;  // earlier query tiles see none of these keys
  for (long hq = blk.h * group; hq < (blk.h + 1) * group; ++hq) {
    __global const float* Q0 = q + (blk.b * L * H + hq) * HEADDIM;  // position 0 of head hq
    __global const float* dO0 = dout + (blk.b * L * H + hq) * HEADDIM;
    __global const float* lse0 = lse + (blk.b * H + hq) * L;
    __global const float* d0 = drow + (blk.b * H + hq) * L;
    for (int q0 = qstart; q0 < n; q0 += BQ) {
      const int nq = min(BQ, n - q0);
      barrier(CLK_LOCAL_MEM_FENCE);
      STAGE_T4((__local float*)Qt4, BQ, nq, Q0 + (long)(q0 + j_) * qstride, 1.0f, ITEMS_KT);
      STAGE_T4((__local float*)dOt4, BQ, nq, dO0 + (long)(q0 + j_) * qstride, 1.0f, ITEMS_KT);
      for (int i = lid; i < BQ; i += ITEMS_KT) {
        lse_s[i] = i < nq ? lse0[q0 + i] : 0.0f;
        d_s[i] = i < nq ? d0[q0 + i] : 0.0f;
      }
      barrier(CLK_LOCAL_MEM_FENCE);
      float4 st[4] = {(float4)0.0f, (float4)0.0f, (float4)0.0f, (float4)0.0f};  // Sᵀ: the item's keys x queries
      float4 dpt[4] = {(float4)0.0f, (float4)0.0f, (float4)0.0f, (float4)0.0f};
      TILE_PRODUCT(st, Kt4, BK, r0, Qt4, BQ, cg * 4);
      TILE_PRODUCT(dpt, Vt4, BK, r0, dOt4, BQ, cg * 4);
      const int4 query = (int4)(q0 + cg * 4) + (int4)(0, 1, 2, 3);
      const float4 row_lse = lse4[cg], row_d = d4[cg];
      float p[4][4], ds[4][4];
      _Pragma("unroll") for (int r = 0; r < 4; ++r) {
        const int4 vis = VISIBLE4(query, (int4)(k0 + r0 + r), n, causal, plen);
        const float4 pr = select((float4)0.0f, exp(st[r] * (float4)scale - row_lse), vis);
        const float4 x = pr * (dpt[r] - row_d);
        p[r][0] = pr.s0, p[r][1] = pr.s1, p[r][2] = pr.s2, p[r][3] = pr.s3;
        ds[r][0] = x.s0, ds[r][1] = x.s1, ds[r][2] = x.s2, ds[r][3] = x.s3;
      }
      STORE_T(Pq4, BK, r0, cg * 4, p);
      STORE_T(dSq4, BK, r0, cg * 4, ds);
      barrier(CLK_LOCAL_MEM_FENCE);
      ROWS_PRODUCT(gv, Pq4, BK, r0, nq, dO0 + (long)(q0 + n_) * qstride);
      ROWS_PRODUCT(gk, dSq4, BK, r0, nq, Q0 + (long)(q0 + n_) * qstride);
    }
  }
  _Pragma("unroll") for (int r = 0; r < 4; ++r) {
    const int s = k0 + r0 + r;
    if (s >= n) continue;
    const long row = ((blk.b * L + s) * KVH + blk.h) * HEADDIM;
    _Pragma("unroll") for (int c = 0; c < NDV; ++c) {
      const int at = (c * CG + cg) * 4;
      const float4 xk = gk[r][c] * (float4)scale, xv = gv[r][c];
      vstore4(acc_k ? vload4(0, dk + row + at) + xk : xk, 0, dk + row + at);
      vstore4(acc_v ? vload4(0, dv + row + at) + xv : xv, 0, dv + row + at);
    }
  }
}
#endif  // CG
