// fp32 GEMM for GPUs: C = alpha * op(A) op(B) + beta * C, row-major, batched (group id 2).
// One work-group of 256 computes a BM x BN = 128 x 128 tile of C, walking K in steps of BK.
// Per step the A tile (BM x BK) and the B tile (BK x BN) go through local memory, A stored
// k-major so that both are read as float4 rows. Work-item (tr, tc) of the 16 x 16 grid
// accumulates 8 x 8 values in registers: rows tr*4 + {0..3} and 64 + tr*4 + {0..3}, columns
// tc*4 + {0..3} and 64 + tc*4 + {0..3}, so that neighbouring work-items read neighbouring
// float4s of local memory (no bank conflicts) and write neighbouring float4s of C. Per k a
// work-item does 64 FMAs for 4 local float4 reads.
// The next step's tiles are fetched from global memory into registers before the current
// step's FMAs, so their latency hides behind the arithmetic.
// Products with few tiles and a long K split K across work-groups (see the kernel's splits).
// Knobs (-D, chosen per device by `magellano tune-gemm`):
//   TA, TB (0 or 1)  op(A) = Aᵀ / op(B) = Bᵀ, resolved at compile time
//   BK (8 or 16)     K step: 16 halves the barriers, doubles the local memory
//   DB (0 or 1)      1: two local buffers, one barrier per step; 0: one buffer, two barriers
//   ALIGNED (0 or 1) the host guarantees whole tiles and K steps and 16-byte aligned operands:
//                    no bounds checks or element-wise paths are compiled at all
//   UNROLL (0 or 1)  unroll the FMA loops explicitly (the host sets it for GPUs: PoCL takes
//                    ten times longer to compile the unrolled kernel, for no gain on a CPU)
// Interior tiles of 16-byte aligned operands (vec_a, vec_b, vec_c: the host checks offsets,
// leading dimensions and batch strides) move through float4 pointers, which lets the compiler
// emit 128-bit loads and stores; a tile that crosses M, N or K, or an unaligned operand, moves
// element by element with bounds checks. beta == 0 never reads C.
// No early return before a barrier (PoCL 3.1 miscompiles that).
// Sizes are int here, the one exception to cl/common.cl's `long` for sizes: the host checks that
// each fits (detail::require_int_sizes). Measured on the H100 in one session (4096^3, 7 repeats):
// int arguments 49.3 TFLOP/s, long arguments narrowed to int at the kernel's top 41.0
// (benchmarks/results/gemm_long_sizes_ab_h100_2026-12-06.jsonl).
#ifndef TA
#define TA 0
#endif
#ifndef TB
#define TB 0
#endif
#ifndef BK
#define BK 8
#endif
#ifndef DB
#define DB 1
#endif
#ifndef UNROLL
#define UNROLL 0
#endif
#ifndef ALIGNED
#define ALIGNED 0
#endif
#define BM 128
#define BN 128
#define LA (BM * BK / 4 / 256)  // float4s of the A tile per work-item (1 or 2)
#define LB (BN * BK / 4 / 256)
#define NBUF (DB ? 2 : 1)

// op(A)(i, p) for A stored (m, k) (TA == 0) or (k, m) (TA == 1); 0 outside.
inline float load_a(__global const float* a, int lda, int m, int k, int i, int p) {
  if (i >= m || p >= k) return 0.0f;
  return TA ? a[(long)p * lda + i] : a[(long)i * lda + p];
}
// op(B)(p, j) for B stored (k, n) (TB == 0) or (n, k) (TB == 1); 0 outside.
inline float load_b(__global const float* b, int ldb, int k, int n, int p, int j) {
  if (p >= k || j >= n) return 0.0f;
  return TB ? b[(long)j * ldb + p] : b[(long)p * ldb + j];
}

// Float4 number f (0..BM*BK/4) of the A tile: its first element (i, p) within the tile. The
// 4 values run along the stored rows: along p for A stored (m, k), along i for (k, m).
inline int2 a_slot(int f) {
  return TA ? (int2)((f % (BM / 4)) * 4, f / (BM / 4)) : (int2)(f / (BK / 4), (f % (BK / 4)) * 4);
}
// Float4 number f of the B tile: its first element (p, j); along j for B stored (k, n), along
// p for (n, k).
inline int2 b_slot(int f) {
  return TB ? (int2)((f % (BK / 4)) * 4, f / (BK / 4)) : (int2)(f / (BN / 4), (f % (BN / 4)) * 4);
}

inline float4 fetch_a(__global const float* a, int lda, int m, int k, int i, int p, bool fast) {
  if (ALIGNED || fast) return *(__global const float4*)(a + (TA ? (long)p * lda + i : (long)i * lda + p));
  return TA ? (float4)(load_a(a, lda, m, k, i, p), load_a(a, lda, m, k, i + 1, p),
                       load_a(a, lda, m, k, i + 2, p), load_a(a, lda, m, k, i + 3, p))
            : (float4)(load_a(a, lda, m, k, i, p), load_a(a, lda, m, k, i, p + 1),
                       load_a(a, lda, m, k, i, p + 2), load_a(a, lda, m, k, i, p + 3));
}
inline float4 fetch_b(__global const float* b, int ldb, int k, int n, int p, int j, bool fast) {
  if (ALIGNED || fast) return *(__global const float4*)(b + (TB ? (long)j * ldb + p : (long)p * ldb + j));
  return TB ? (float4)(load_b(b, ldb, k, n, p, j), load_b(b, ldb, k, n, p + 1, j),
                       load_b(b, ldb, k, n, p + 2, j), load_b(b, ldb, k, n, p + 3, j))
            : (float4)(load_b(b, ldb, k, n, p, j), load_b(b, ldb, k, n, p, j + 1),
                       load_b(b, ldb, k, n, p, j + 2), load_b(b, ldb, k, n, p, j + 3));
}

// Local tiles: as[p * BM + i] = op(A)(m0 + i, k0 + p), bs[p * BN + j] = op(B)(k0 + p, n0 + j).
inline void store_a(__local float* as, int2 s, float4 v) {
  if (TA) {
    *(__local float4*)(as + s.y * BM + s.x) = v;
  } else {
    as[s.y * BM + s.x] = v.s0, as[(s.y + 1) * BM + s.x] = v.s1;
    as[(s.y + 2) * BM + s.x] = v.s2, as[(s.y + 3) * BM + s.x] = v.s3;
  }
}
inline void store_b(__local float* bs, int2 s, float4 v) {
  if (TB) {
    bs[s.x * BN + s.y] = v.s0, bs[(s.x + 1) * BN + s.y] = v.s1;
    bs[(s.x + 2) * BN + s.y] = v.s2, bs[(s.x + 3) * BN + s.y] = v.s3;
  } else {
    *(__local float4*)(bs + s.x * BN + s.y) = v;
  }
}

__kernel __attribute__((reqd_work_group_size(256, 1, 1)))
void gemm_gpu(__global const float* a, ulong a_off, int lda, long a_stride, int vec_a,
              __global const float* b, ulong b_off, int ldb, long b_stride, int vec_b,
              __global float* c, ulong c_off, int vec_c, int m, int n, int k, int splits,
              int k_per_split, float alpha, float beta) {
  // Group id 2 = batch * splits + split: split s sums K from s * k_per_split (a multiple of
  // 16) into its own (m, n) matrix of c; the host sums the splits afterwards.
  const int z = get_group_id(2) / splits, k_lo = get_group_id(2) % splits * k_per_split;
  a += a_off + z * a_stride + (TA ? (long)k_lo * lda : k_lo);
  b += b_off + z * b_stride + (TB ? k_lo : (long)k_lo * ldb);
  c += c_off + (long)get_group_id(2) * m * n;
  k = min(k - k_lo, k_per_split);
  __local float4 as4[NBUF][BK][BM / 4];
  __local float4 bs4[NBUF][BK][BN / 4];
  const int m0 = get_group_id(1) * BM, n0 = get_group_id(0) * BN;
  const int tid = get_local_id(0), tr = tid / 16, tc = tid % 16;
  const bool a_rows_full = vec_a && m0 + BM <= m, b_cols_full = vec_b && n0 + BN <= n;
  // The next step's tiles, in flight: float4 number tid (and tid + 256 when BK == 16).
  float4 va0, va1, vb0, vb1;
  const int2 sa0 = a_slot(tid), sa1 = a_slot(tid + 256), sb0 = b_slot(tid), sb1 = b_slot(tid + 256);
#define FETCH(k0)                                                                      \
  {                                                                                    \
    const bool fa = a_rows_full && (k0) + BK <= k, fb = b_cols_full && (k0) + BK <= k;  \
    va0 = fetch_a(a, lda, m, k, m0 + sa0.x, (k0) + sa0.y, fa);                          \
    vb0 = fetch_b(b, ldb, k, n, (k0) + sb0.x, n0 + sb0.y, fb);                          \
    if (LA == 2) va1 = fetch_a(a, lda, m, k, m0 + sa1.x, (k0) + sa1.y, fa);             \
    if (LB == 2) vb1 = fetch_b(b, ldb, k, n, (k0) + sb1.x, n0 + sb1.y, fb);             \
  }
#define STORE(buf)                                                   \
  {                                                                  \
    __local float* as = (__local float*)as4[buf];                    \
    __local float* bs = (__local float*)bs4[buf];                    \
    store_a(as, sa0, va0), store_b(bs, sb0, vb0);                    \
    if (LA == 2) store_a(as, sa1, va1);                              \
    if (LB == 2) store_b(bs, sb1, vb1);                              \
  }

  float acc[8][8];
#if UNROLL
#pragma unroll
#endif
  for (int i = 0; i < 8; ++i)
#if UNROLL
#pragma unroll
#endif
    for (int j = 0; j < 8; ++j) acc[i][j] = 0.0f;
  FETCH(0)
  STORE(0)
  barrier(CLK_LOCAL_MEM_FENCE);
  int buf = 0;
  for (int k0 = 0; k0 < k; k0 += BK) {
    const bool more = k0 + BK < k;
    if (more) {
      FETCH(k0 + BK)
    }
#if UNROLL
#pragma unroll
#endif
    for (int p = 0; p < BK; ++p) {
      const float4 a_lo = as4[buf][p][tr], a_hi = as4[buf][p][16 + tr];
      const float4 b_lo = bs4[buf][p][tc], b_hi = bs4[buf][p][16 + tc];
      const float ra[8] = {a_lo.s0, a_lo.s1, a_lo.s2, a_lo.s3, a_hi.s0, a_hi.s1, a_hi.s2, a_hi.s3};
      const float rb[8] = {b_lo.s0, b_lo.s1, b_lo.s2, b_lo.s3, b_hi.s0, b_hi.s1, b_hi.s2, b_hi.s3};
#if UNROLL
#pragma unroll
#endif
      for (int i = 0; i < 8; ++i)
#if UNROLL
#pragma unroll
#endif
        for (int j = 0; j < 8; ++j) acc[i][j] = fma(ra[i], rb[j], acc[i][j]);
    }
#if DB
    if (more) {
      STORE(buf ^ 1)
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    buf ^= 1;
#else
    barrier(CLK_LOCAL_MEM_FENCE);
    if (more) {
      STORE(0)
    }
    barrier(CLK_LOCAL_MEM_FENCE);
#endif
  }
#undef FETCH
#undef STORE
  const bool c_cols_full = ALIGNED || (vec_c && n0 + BN <= n);
#if UNROLL
#pragma unroll
#endif
  for (int i = 0; i < 8; ++i) {
    const int row = m0 + (i < 4 ? tr * 4 + i : 64 + tr * 4 + i - 4);
    if (!ALIGNED && row >= m) continue;
    __global float* out = c + (long)row * n + n0;
    if (c_cols_full) {
      float4 lo = alpha * (float4)(acc[i][0], acc[i][1], acc[i][2], acc[i][3]);
      float4 hi = alpha * (float4)(acc[i][4], acc[i][5], acc[i][6], acc[i][7]);
      __global float4* lo_out = (__global float4*)(out + tc * 4);
      __global float4* hi_out = (__global float4*)(out + 64 + tc * 4);
      if (beta != 0.0f) lo += beta * *lo_out, hi += beta * *hi_out;
      *lo_out = lo, *hi_out = hi;
      continue;
    }
#if UNROLL
#pragma unroll
#endif
    for (int j = 0; j < 8; ++j) {
      const int col = j < 4 ? tc * 4 + j : 64 + tc * 4 + j - 4;
      if (n0 + col >= n) continue;
      out[col] = beta == 0.0f ? alpha * acc[i][j] : alpha * acc[i][j] + beta * out[col];
    }
  }
}
