// fp32 GEMM for GPUs: C = alpha * op(A) op(B) + beta * C, row-major, batched (group id 2).
// One work-group of 256 computes a BM x BN = 128 x 128 tile of C, walking K in steps of BK = 8:
// the A tile (BM x BK) and the B tile (BK x BN) are loaded once into local memory (one float4
// per work-item each), A stored k-major so that both are read as float4 rows. Work-item
// (tr, tc) of the 16 x 16 grid accumulates 8 x 8 values in registers: rows tr*4 + {0..3} and
// 64 + tr*4 + {0..3}, columns tc*4 + {0..3} and 64 + tc*4 + {0..3}, so that neighbouring
// work-items read neighbouring float4s of local memory (no bank conflicts) and write
// neighbouring float4s of C. Per BK step a work-item does 64 FMAs for 4 local float4 reads.
// Knobs (-D): TA, TB (0 or 1): op(A) = Aᵀ / op(B) = Bᵀ, resolved at compile time.
// Interior tiles of 16-byte aligned operands (vec_a, vec_b: the host checks offsets, leading
// dimensions and batch strides) load through float4 pointers, which lets the compiler emit
// 128-bit loads; a tile that crosses M, N or K, or an unaligned operand, loads element by
// element with bounds checks. C is written with bounds checks.
// beta == 0 never reads C. No early return before a barrier (PoCL 3.1 miscompiles that).
#ifndef TA
#define TA 0
#endif
#ifndef TB
#define TB 0
#endif
#define BM 128
#define BN 128
#define BK 8

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

__kernel __attribute__((reqd_work_group_size(256, 1, 1)))
void gemm_gpu(__global const float* a, ulong a_off, int lda, long a_stride, int vec_a,
              __global const float* b, ulong b_off, int ldb, long b_stride, int vec_b,
              __global float* c, ulong c_off, int m, int n, int k, float alpha, float beta) {
  const int z = get_group_id(2);
  a += a_off + z * a_stride;
  b += b_off + z * b_stride;
  c += c_off + (long)z * m * n;
  __local float4 as4[BK][BM / 4];  // as[p][i] = op(A)(m0 + i, k0 + p)
  __local float4 bs4[BK][BN / 4];  // bs[p][j] = op(B)(k0 + p, n0 + j)
  __local float* as = (__local float*)as4;
  __local float* bs = (__local float*)bs4;
  const int m0 = get_group_id(1) * BM, n0 = get_group_id(0) * BN;
  const int tid = get_local_id(0), tr = tid / 16, tc = tid % 16;
  float acc[8][8];
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 8; ++j) acc[i][j] = 0.0f;
  for (int k0 = 0; k0 < k; k0 += BK) {
    const bool k_full = k0 + BK <= k;
#if TA == 0
    {  // A stored (m, k): 4 consecutive p of row i
      const int i = tid / 2, p = (tid % 2) * 4;
      float4 v;
      if (vec_a && k_full && m0 + BM <= m) {
        v = *(__global const float4*)(a + (long)(m0 + i) * lda + k0 + p);
      } else {
        v = (float4)(load_a(a, lda, m, k, m0 + i, k0 + p), load_a(a, lda, m, k, m0 + i, k0 + p + 1),
                     load_a(a, lda, m, k, m0 + i, k0 + p + 2), load_a(a, lda, m, k, m0 + i, k0 + p + 3));
      }
      as[p * BM + i] = v.s0, as[(p + 1) * BM + i] = v.s1;
      as[(p + 2) * BM + i] = v.s2, as[(p + 3) * BM + i] = v.s3;
    }
#else
    {  // A stored (k, m): 4 consecutive i of row p
      const int p = tid / 32, i = (tid % 32) * 4;
      float4 v;
      if (vec_a && k_full && m0 + BM <= m) {
        v = *(__global const float4*)(a + (long)(k0 + p) * lda + m0 + i);
      } else {
        v = (float4)(load_a(a, lda, m, k, m0 + i, k0 + p), load_a(a, lda, m, k, m0 + i + 1, k0 + p),
                     load_a(a, lda, m, k, m0 + i + 2, k0 + p), load_a(a, lda, m, k, m0 + i + 3, k0 + p));
      }
      as4[p][i / 4] = v;
    }
#endif
#if TB == 0
    {  // B stored (k, n): 4 consecutive j of row p
      const int p = tid / 32, j = (tid % 32) * 4;
      float4 v;
      if (vec_b && k_full && n0 + BN <= n) {
        v = *(__global const float4*)(b + (long)(k0 + p) * ldb + n0 + j);
      } else {
        v = (float4)(load_b(b, ldb, k, n, k0 + p, n0 + j), load_b(b, ldb, k, n, k0 + p, n0 + j + 1),
                     load_b(b, ldb, k, n, k0 + p, n0 + j + 2), load_b(b, ldb, k, n, k0 + p, n0 + j + 3));
      }
      bs4[p][j / 4] = v;
    }
#else
    {  // B stored (n, k): 4 consecutive p of row j
      const int j = tid / 2, p = (tid % 2) * 4;
      float4 v;
      if (vec_b && k_full && n0 + BN <= n) {
        v = *(__global const float4*)(b + (long)(n0 + j) * ldb + k0 + p);
      } else {
        v = (float4)(load_b(b, ldb, k, n, k0 + p, n0 + j), load_b(b, ldb, k, n, k0 + p + 1, n0 + j),
                     load_b(b, ldb, k, n, k0 + p + 2, n0 + j), load_b(b, ldb, k, n, k0 + p + 3, n0 + j));
      }
      bs[p * BN + j] = v.s0, bs[(p + 1) * BN + j] = v.s1;
      bs[(p + 2) * BN + j] = v.s2, bs[(p + 3) * BN + j] = v.s3;
    }
#endif
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int p = 0; p < BK; ++p) {
      const float4 a_lo = as4[p][tr], a_hi = as4[p][16 + tr];
      const float4 b_lo = bs4[p][tc], b_hi = bs4[p][16 + tc];
      const float ra[8] = {a_lo.s0, a_lo.s1, a_lo.s2, a_lo.s3, a_hi.s0, a_hi.s1, a_hi.s2, a_hi.s3};
      const float rb[8] = {b_lo.s0, b_lo.s1, b_lo.s2, b_lo.s3, b_hi.s0, b_hi.s1, b_hi.s2, b_hi.s3};
      for (int i = 0; i < 8; ++i)
        for (int j = 0; j < 8; ++j) acc[i][j] = fma(ra[i], rb[j], acc[i][j]);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  for (int i = 0; i < 8; ++i) {
    const int row = m0 + (i < 4 ? tr * 4 + i : 64 + tr * 4 + i - 4);
    if (row >= m) continue;
    for (int j = 0; j < 8; ++j) {
      const int col = n0 + (j < 4 ? tc * 4 + j : 64 + tc * 4 + j - 4);
      if (col >= n) continue;
      __global float* out = c + (long)row * n + col;
      *out = beta == 0.0f ? alpha * acc[i][j] : alpha * acc[i][j] + beta * *out;
    }
  }
}
