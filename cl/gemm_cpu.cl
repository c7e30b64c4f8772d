// fp32 GEMM for CPU devices (PoCL): C = alpha * op(A) op(B) + beta * C, batched, row-major.
// Kernels:
//   gemm_pack_a: columns [k0, k0 + KP) of op(A) (M, K) -> Ap (batch, PM, KP, MR): PM =
//                ceil(M / MR) panels of MR rows, each k-major (MR consecutive floats per k),
//                rows past M zero.
//   gemm_pack_b: rows [k0, k0 + KP) of op(B) (K, N) -> Bp (batch_b, PN, KP, NR): PN =
//                ceil(N / NR) panels of NR columns, k-major, columns past N zero.
//   gemm_tile:   one work-item (work-group of 1) computes one MR x NR tile of C over a K
//                range of the packed panels, with one float16 accumulator per row in
//                registers; PoCL turns the float16 fma into one AVX-512 FMA (a zmm register
//                per row) or two AVX2 ones. (With two float8 per row, which LLVM kept in ymm
//                registers on AVX-512 too, this session's Xeon ran 186 / 194 GFLOP/s at
//                1024 / 2048 instead of 245 / 250.)
// The host packs K in chunks of KP (all of K unless the panels would need too much memory)
// and accumulates the chunks into C (beta = 1 after the first).
// Work-item order: PoCL's pthread device runs work-groups in linear order (x fastest) in
// chunks per thread, so x = the MR-row panel inside an M block of MBLOCK panels, y = the
// NR-column panel, z = M block (+ batch). Consecutive tiles share one packed B panel (hot in
// L1/L2) and walk an A block of MBLOCK * MR rows that stays in L2/L3.
// Knobs (-D): MR (rows per tile, 1..8, default 6), NR fixed at 16 (one float16).
// Sizes arrive as long (the `_arg` parameters); the host checked that each fits in an int, and
// the kernels narrow them at the top so that their index arithmetic stays 32-bit.
#ifndef MR
#define MR 6
#endif
#define NR 16

// a: op(A) is a (M, K) matrix per batch: A[i][k] at a[i * lda + k], or a[k * lda + i] when
// trans. a_stride: elements between batches. Global (>= kp, PM, batch).
__kernel void gemm_pack_a(__global const float* a, ulong a_off, long lda_arg, long a_stride,
                          int trans, long m_arg, long k0_arg, long k_arg, __global float* ap,
                          ulong ap_off) {
  const int lda = lda_arg, m = m_arg, k0 = k0_arg, k = k_arg;  // fit: checked by the host
  a += a_off;
  ap += ap_off;
  const int kk = get_global_id(0), p = get_global_id(1), b = get_global_id(2);
  const int pm = get_global_size(1);
  if (kk >= k) return;
  __global const float* src = a + b * a_stride + (trans ? (long)k0 * lda : k0);
  __global float* dst = ap + (((long)b * pm + p) * k + kk) * MR;
  for (int r = 0; r < MR; ++r) {
    const int i = p * MR + r;
    float v = 0.0f;
    if (i < m) v = trans ? src[(long)kk * lda + i] : src[(long)i * lda + kk];
    dst[r] = v;
  }
}

// b: op(B) is a (K, N) matrix per batch: B[k][j] at b[k * ldb + j], or b[j * ldb + k] when
// trans. Global (>= kp, PN, batch_b).
__kernel void gemm_pack_b(__global const float* b, ulong b_off, long ldb_arg, long b_stride,
                          int trans, long n_arg, long k0_arg, long k_arg, __global float* bp,
                          ulong bp_off) {
  const int ldb = ldb_arg, n = n_arg, k0 = k0_arg, k = k_arg;  // fit: checked by the host
  b += b_off;
  bp += bp_off;
  const int kk = get_global_id(0), q = get_global_id(1), bb = get_global_id(2);
  const int pn = get_global_size(1);
  if (kk >= k) return;
  __global const float* src = b + bb * b_stride + (trans ? k0 : (long)k0 * ldb);
  __global float* dst = bp + (((long)bb * pn + q) * k + kk) * NR;
  const int j0 = q * NR;
  if (!trans && j0 + NR <= n) {
    vstore16(vload16(0, src + (long)kk * ldb + j0), 0, dst);
    return;
  }
  for (int c = 0; c < NR; ++c) {
    const int j = j0 + c;
    float v = 0.0f;
    if (j < n) v = trans ? src[(long)j * ldb + kk] : src[(long)kk * ldb + j];
    dst[c] = v;
  }
}

#define ROW_DECL(r) float16 c##r = 0.0f;
#define ROW_FMA(r) c##r = fma((float16)(pa[r]), b, c##r);
#define ROW_STORE(r)                                                               \
  if (r < rows) {                                                                  \
    __global float* cr = ct + (long)r * ldc;                                       \
    float16 v = alpha * c##r;                                                      \
    if (cols == NR) {                                                              \
      if (beta != 0.0f) v += beta * vload16(0, cr);                                \
      vstore16(v, 0, cr);                                                          \
    } else {                                                                       \
      float t[NR];                                                                 \
      vstore16(v, 0, t);                                                           \
      for (int j = 0; j < cols; ++j) cr[j] = beta != 0.0f ? t[j] + beta * cr[j] : t[j]; \
    }                                                                              \
  }

#if MR >= 1
#define FOR_ROWS_1(X) X(0)
#endif
#define FOR_ROWS_2(X) FOR_ROWS_1(X) X(1)
#define FOR_ROWS_3(X) FOR_ROWS_2(X) X(2)
#define FOR_ROWS_4(X) FOR_ROWS_3(X) X(3)
#define FOR_ROWS_5(X) FOR_ROWS_4(X) X(4)
#define FOR_ROWS_6(X) FOR_ROWS_5(X) X(5)
#define FOR_ROWS_7(X) FOR_ROWS_6(X) X(6)
#define FOR_ROWS_8(X) FOR_ROWS_7(X) X(7)
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FOR_ROWS(X) CAT(FOR_ROWS_, MR)(X)

// ap, bp: packed as above with k = the packed chunk's K extent; this call covers packed
// columns [k0, k0 + kc) of it.
// c: (batch, M, N) with row stride ldc and batch stride c_stride. b_batched: 0 when every
// batch uses panel set 0 of bp. mblock: MR-panels per M block (global size 0).
__kernel __attribute__((reqd_work_group_size(1, 1, 1)))
void gemm_tile(__global const float* ap, ulong ap_off, __global const float* bp, ulong bp_off,
               __global float* c, ulong c_off, long ldc_arg, long c_stride, long m_arg, long n_arg,
               long k_arg, long k0_arg, long kc_arg, int b_batched, long mblocks_arg, float alpha,
               float beta) {
  // fit: checked by the host
  const int ldc = ldc_arg, m = m_arg, n = n_arg, k = k_arg, k0 = k0_arg, kc = kc_arg;
  const int mblocks = mblocks_arg;
  ap += ap_off;
  bp += bp_off;
  c += c_off;
  const int pm = (m + MR - 1) / MR, pn = (n + NR - 1) / NR;
  const int mblock = get_global_size(0);
  const int z = get_global_id(2);
  const int batch = z / mblocks;
  const int p = (z - batch * mblocks) * mblock + get_global_id(0);
  const int q = get_global_id(1);
  if (p >= pm) return;  // the last M block may be partial (no barriers in this kernel)
  __global const float* pa = ap + (((long)batch * pm + p) * k + k0) * MR;
  __global const float* pb = bp + (((long)(b_batched ? batch : 0) * pn + q) * k + k0) * NR;
  FOR_ROWS(ROW_DECL)
  for (int kk = 0; kk < kc; ++kk) {
    const float16 b = vload16(0, pb);
    FOR_ROWS(ROW_FMA)
    pa += MR;
    pb += NR;
  }
  const int rows = min(MR, m - p * MR), cols = min(NR, n - q * NR);
  __global float* ct = c + batch * c_stride + (long)(p * MR) * ldc + q * NR;
  FOR_ROWS(ROW_STORE)
}
