// Fused attention (flash-attention style), forward and backward; the math and the layouts are in
// include/magellano/ops/attention.hpp:
//   q, dq, out, dout: (B, L, H, HEADDIM)   k, v, dk, dv: (B, L, KVH, HEADDIM)
//   lse, drow: (B, H, L)     query head h reads kv head h / (H / KVH)
// Kernels:
//   attn_fwd       out, lse       a work-group per (b, head, query block of BQ rows); streams key
//                                 tiles of BK, online softmax
//   attn_bwd_rowdot drow = Σ_c dout ∘ out (the D of the backward), a work-item per (b, t, head)
//   attn_bwd_dq    dq             a work-group per (b, head, query block); streams key tiles
//   attn_bwd_dkdv  dk, dv         a work-group per (b, kv head, key block of BK rows); streams the
//                                 query tiles of every query head sharing the kv head (no atomics)
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
#define VISIBLE(query, key, L, causal) \
  (((key) < (vi)(L)) & ((query) < (vi)(L)) & (((key) <= (query)) | (vi)((causal) ? 0 : -1)))

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

// ---- forward -----------------------------------------------------------------------------------
// q: (B, L, H, HEADDIM); k, v: (B, L, KVH, HEADDIM); out: like q; lse: (B, H, L).
__kernel __attribute__((reqd_work_group_size(ITEMS_Q, 1, 1)))
void attn_fwd(__global const float* q, ulong q_off, __global const float* k, ulong k_off,
              __global const float* v, ulong v_off, __global float* out, ulong out_off,
              __global float* lse, ulong lse_off, long L, long H, long KVH, float scale, int causal) {
  q += q_off; k += k_off; v += v_off; out += out_off; lse += lse_off;
  __local float Qs[BQ * RSTRIDE];        // the block's queries, times scale
  __local vf Kt_[HEADDIM * BK / VEC];    // a key tile, transposed (vectors: aligned loads)
  __local float* Kt = (__local float*)Kt_;
  __local float Ps[BQ * (BK + 1)];       // each item's probabilities of the tile (its rows)
  const Block blk = block_of(get_group_id(0), L, H, BQ, causal);
  const int lid = get_local_id(0);
  const int n = (int)L, q0 = (int)blk.r0, nq = min(BQ, n - q0);
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
  const int kend = causal ? min(n, q0 + BQ) : n;  // keys any row of the block sees
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
        s[r][j] = select((vf)(-FLT_MAX), s[r][j], VISIBLE(query, key, n, causal));
        mx = fmax(mx, s[r][j]);
      }
      const float m_new = fmax(m[r], HMAX(mx));
      const float alpha = exp(m[r] - m_new);
      vf sum = (vf)0.0f;
      UNROLL for (int j = 0; j < BK / VEC; ++j) {
        const vi key = (vi)(k0 + j * VEC) + IOTA;
        const vf p = select((vf)0.0f, exp(s[r][j] - (vf)m_new), VISIBLE(query, key, n, causal));
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

// dq (like q) = scale · Σ_s dS[t, s] k[s], dS = P ∘ (dP - D), P = exp(scale · q kᵀ - lse),
// dP = dout vᵀ. acc: add to dq.
__kernel __attribute__((reqd_work_group_size(ITEMS_Q, 1, 1)))
void attn_bwd_dq(__global const float* q, ulong q_off, __global const float* k, ulong k_off,
                 __global const float* v, ulong v_off, __global const float* dout, ulong dout_off,
                 __global const float* lse, ulong lse_off, __global const float* drow, ulong drow_off,
                 __global float* dq, ulong dq_off, long L, long H, long KVH, float scale, int causal, int acc) {
  q += q_off; k += k_off; v += v_off; dout += dout_off; lse += lse_off; drow += drow_off; dq += dq_off;
  __local float Qs[BQ * RSTRIDE], dOs[BQ * RSTRIDE];  // the block's queries and output gradients
  __local vf Kt_[HEADDIM * BK / VEC], Vt_[HEADDIM * BK / VEC];  // a key tile and its values, transposed
  __local float *Kt = (__local float*)Kt_, *Vt = (__local float*)Vt_;
  __local float Ps[BQ * (BK + 1)];                    // each item's dS of the tile
  const Block blk = block_of(get_group_id(0), L, H, BQ, causal);
  const int lid = get_local_id(0);
  const int n = (int)L, q0 = (int)blk.r0, nq = min(BQ, n - q0);
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
  const int kend = causal ? min(n, q0 + BQ) : n;
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
        const vf p = select((vf)0.0f, exp(s[r][j] * (vf)scale - (vf)row_lse[r]), VISIBLE(query, key, n, causal));
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
                   long KVH, float scale, int causal, int acc_k, int acc_v) {
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
  const long group = H / KVH;  // query heads per kv head
  const long qstride = H * HEADDIM, kstride = KVH * HEADDIM;
  const long first = (blk.b * L + k0) * KVH + blk.h;  // the block's first row of k
  STAGE_ROWS(Ks, BK, nk, k + first * HEADDIM + r_ * kstride, 1.0f, ITEMS_K);
  STAGE_ROWS(Vs, BK, nk, v + first * HEADDIM + r_ * kstride, 1.0f, ITEMS_K);
  vf gk[ROWS][NVD], gv[ROWS][NVD];
  ZERO(gk, NVD);
  ZERO(gv, NVD);
  const int qstart = causal ? k0 / BQ * BQ : 0;  // earlier query tiles see none of these keys
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
                              VISIBLE(query, key, n, causal));
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
