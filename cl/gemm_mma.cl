// Matrix-engine GEMM for NVIDIA GPUs of compute capability >= 8.0: C = alpha * op(A) op(B) + beta * C,
// fp32 operands and result, the products on the tensor cores through inline PTX `mma.sync`, fp32
// accumulation. Row-major, batched (group id 2), split K like cl/gemm_gpu.cl.
//   PREC 1 (bf16): operands rounded to bf16 (to nearest, ties to even) as they are staged;
//                  mma.m16n8k16.bf16, K step BK = 32.
//   PREC 2 (tf32): operands rounded to tf32 (to nearest, ties away from zero, as cvt.rna.tf32.f32);
//                  mma.m16n8k8.tf32, K step BK = 16.
// One work-group of 256 (8 warps of 32) computes a 128 x 128 tile of C. Warp w covers rows
// (w / 4) * 64 .. +64 and columns (w % 4) * 32 .. +32 of it: 4 x 4 mma tiles of 16 x 8, so a
// work-item holds 64 accumulators. Per K step the A tile (128 x BK) and the B tile (BK x 128) go
// through local memory, both stored k-contiguous (as[m][k], bs[n][k]) with rows padded to 80 bytes,
// so that a fragment load (row g, 32-bit word t of 8 rows x 4 words) touches 32 different banks.
// Two local buffers: the next step's tiles are fetched into registers before the current step's
// products and stored after them, one barrier per step.
// Fragment layouts (PTX ISA, "Matrix fragments for mma.m16n8k16 / m16n8k8"), lane = 4 g + t:
//   bf16 A (16 x 16): a0 = A[g][2t, 2t+1], a1 = A[g+8][2t, 2t+1], a2 = A[g][2t+8, +9], a3 = A[g+8][2t+8, +9]
//        B (16 x 8) : b0 = B[2t, 2t+1][g], b1 = B[2t+8, 2t+9][g]           (low half = lower index)
//   tf32 A (16 x 8) : a0 = A[g][t], a1 = A[g+8][t], a2 = A[g][t+4], a3 = A[g+8][t+4]
//        B (8 x 8)  : b0 = B[t][g], b1 = B[t+4][g]
//   C (16 x 8, f32) : c0 = C[g][2t], c1 = C[g][2t+1], c2 = C[g+8][2t], c3 = C[g+8][2t+1]
// EMULATE 1: the same tiling, staging and rounding with each mma replaced by fp32 FMAs that compute
// the work-item's own four outputs of the tile from local memory: any OpenCL device runs it, which is
// how CI tests everything but the fragment loads and the instruction (tests/kernel/gemm_mma_test.cpp).
// LDMATRIX 1 (hardware only): fragments loaded with ldmatrix.x4 (four 8 x 16-byte matrices per
// instruction: 4 for A's and 2 for B's fragments of a K step instead of 24 32-bit loads); a tf32
// fragment is an 8 x 4 matrix of 32-bit words, which ldmatrix moves like 8 x 8 of 16-bit ones. The
// address of a local pointer is taken as a 32-bit shared-window offset ((uint)(size_t)p).
// Packed form (kernels mma_pack, gemm_mma_packed): the operands are first rounded and copied into
// k-contiguous tiles, op(A) as (batch, mp, kp) and op(B) as (batch, np, kp) of bf16 / tf32 bits,
// zero beyond m, n, k (mp, np multiples of 128, kp of 32). The product then reads half the bytes
// (bf16) with no conversion, no transposition and no bounds checks in its loop: a tile row is
// BK elements = 64 bytes = 4 chunks of 16 bytes, staged through registers or, with CP_ASYNC 1
// (hardware only), by cp.async straight into local memory.
// Knobs: TA, TB (0 or 1) op(A) = Aᵀ, op(B) = Bᵀ (direct form); PREC; EMULATE; LDMATRIX; PTX_CVT
// (hardware: rounding by cvt instead of integer arithmetic, the same bits); CP_ASYNC; the probe
// picks the form. vec_a / vec_b: the host checked that
// offsets, leading dimensions and batch strides are multiples of 4 (float4 loads of interior groups).
// beta == 0 never reads C. No early return before a barrier. Loops are unrolled for the hardware
// only (PoCL takes three times longer to compile the unrolled emulation, for nothing). Sizes are int (the host checks them).
#ifndef TA
#define TA 0
#endif
#ifndef TB
#define TB 0
#endif
#ifndef PREC
#define PREC 1
#endif
#ifndef EMULATE
#define EMULATE 0
#endif
#ifndef LDMATRIX
#define LDMATRIX 0
#endif
#ifndef PTX_CVT
#define PTX_CVT 0
#endif
#ifndef CP_ASYNC
#define CP_ASYNC 0
#endif
#define BM 128
#define BN 128
#if PREC == 1
typedef ushort elem_t;  // bf16 bits
#define PACKED_T half   // the host's 2-byte dtype of packed operands (holding bf16 bits)
#define BK 32
#define LDS 40          // local row: BK + 8 halves = 80 bytes
#define MMA_K 16
#else
typedef uint elem_t;    // tf32 bits (an fp32 with the low 13 mantissa bits zero)
#define PACKED_T float  // the host's 4-byte dtype of packed operands (holding tf32 bits)
#define BK 16
#define LDS 20          // BK + 4 words = 80 bytes
#define MMA_K 8
#endif
#define GROUPS (BM * BK / 4 / 256)  // float4 groups of one tile per work-item: 4 (bf16), 2 (tf32)
// op(A) rows run along k in memory when A is stored (m, k); op(B)'s columns when B is stored (n, k).
#define A_KCONTIG (!TA)
#define B_KCONTIG (TB)

inline elem_t round_operand(float f) {
  const uint u = as_uint(f);
#if PREC == 1
  if ((u & 0x7fffffffu) > 0x7f800000u) return (ushort)((u >> 16) | 0x40u);  // NaN stays NaN
  return (ushort)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
#else
  if ((u & 0x7f800000u) == 0x7f800000u) return u;  // inf, NaN
  return (u + 0x1000u) & 0xffffe000u;
#endif
}

inline float operand_value(elem_t e) {
#if PREC == 1
  return as_float((uint)e << 16);
#else
  return as_float(e);
#endif
}

// Group f (0 .. 128 * BK / 4) of a tile of 128 rows (m for A, n for B) by BK: its first element
// (row, kk); its 4 values run along kk. An operand that is k-contiguous in memory gives them as one
// float4 of a row; otherwise they are 4 loads from consecutive k rows of memory, neighbouring
// work-items taking neighbouring rows (coalesced). Either way a group lands in local memory as one
// vector store along kk (the rows of a warp's stores 80 bytes apart: at most 2-way bank conflicts).
inline int2 group_slot(int f, bool kcontig) {
  return kcontig ? (int2)(f / (BK / 4), (f % (BK / 4)) * 4) : (int2)(f % BM, (f / BM) * 4);
}

// x(r, p) of an operand stored (rows, k) (kcontig) or (k, rows); 0 outside.
inline float load1(__global const float* x, int ld, int rows, int k, int r, int p, bool kcontig) {
  if (r >= rows || p >= k) return 0.0f;
  return kcontig ? x[(long)r * ld + p] : x[(long)p * ld + r];
}

// x(r, p .. p + 3).
inline float4 fetch_group(__global const float* x, int ld, int rows, int k, int r, int p, bool kcontig,
                          bool vec) {
  if (kcontig && vec && r < rows && p + 4 <= k) return *(__global const float4*)(x + (long)r * ld + p);
  return (float4)(load1(x, ld, rows, k, r, p, kcontig), load1(x, ld, rows, k, r, p + 1, kcontig),
                  load1(x, ld, rows, k, r, p + 2, kcontig), load1(x, ld, rows, k, r, p + 3, kcontig));
}

// A group of 4 values rounded to the operand type: 4 bf16 (uint2) or 4 tf32 (uint4) bits. The
// hardware rounds with cvt (bf16x2: two values per instruction; the same bits as round_operand for
// every non-NaN).
#if PREC == 1
typedef uint2 group_bits;
#define STORE_GROUP(v, p) vstore2(v, 0, (p))
#else
typedef uint4 group_bits;
#define STORE_GROUP(v, p) vstore4(v, 0, (p))
#endif
inline group_bits round_group(float4 v) {
#if !EMULATE && PTX_CVT && PREC == 1
  uint lo, hi;  // the value converted from the first operand goes to the upper half
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(lo) : "f"(v.s1), "f"(v.s0));
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(hi) : "f"(v.s3), "f"(v.s2));
  return (uint2)(lo, hi);
#elif !EMULATE && PTX_CVT
  uint4 w;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(w.s0) : "f"(v.s0));
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(w.s1) : "f"(v.s1));
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(w.s2) : "f"(v.s2));
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(w.s3) : "f"(v.s3));
  return w;
#elif PREC == 1
  return (uint2)(round_operand(v.s0) | ((uint)round_operand(v.s1) << 16),
                 round_operand(v.s2) | ((uint)round_operand(v.s3) << 16));
#else
  return (uint4)(round_operand(v.s0), round_operand(v.s1), round_operand(v.s2), round_operand(v.s3));
#endif
}

// Rounds a group and stores it into a local tile t[row][kk .. kk + 3].
inline void put_group(__local elem_t* t, int2 s, float4 v) {
  STORE_GROUP(round_group(v), (__local uint*)(t + s.x * LDS + s.y));
}

#if !EMULATE
#if PREC == 1
#define MMA(d, a, b)                                                                                   \
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "   \
               "{%8,%9}, {%0,%1,%2,%3};"                                                               \
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])                                        \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]))
#else
#define MMA(d, a, b)                                                                                   \
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "    \
               "{%8,%9}, {%0,%1,%2,%3};"                                                               \
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])                                        \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]))
#endif
#endif

#if LDMATRIX
// Four 8 x 16-byte matrices: lane l supplies the row address of matrix l / 8, row l % 8; register
// r of lane l gets 32-bit word l % 4 of row l / 4 of matrix r.
#define LDMATRIX_X4(r, addr)                                                                   \
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"                \
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr))
#endif
#if LDMATRIX || CP_ASYNC
inline uint shared_address(__local const void* p) { return (uint)(size_t)p; }
#endif

// 32-bit word of a local tile holding elements (row, kk) and, for bf16, (row, kk + 1).
inline uint tile_word(__local const elem_t* t, int row, int kk) {
#if PREC == 1
  return *(__local const uint*)(t + row * LDS + kk);
#else
  return t[row * LDS + kk];
#endif
}

// The products of one K step (BK) of the warp's 64 x 32 corner (wm, wn) of the work-group's tile:
// at, bt the local A and B tiles (rows k-contiguous, LDS apart); acc[m tile][n tile][c0..c3].
__attribute__((always_inline)) inline void mma_k_step(__local const elem_t* at, __local const elem_t* bt, float acc[4][4][4], int wm,
                       int wn, int lane) {
  const int g = lane / 4, t = lane % 4;
#if !EMULATE
#pragma unroll
#endif
  for (int kk = 0; kk < BK; kk += MMA_K) {
#if EMULATE
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) {
        const int row = wm + i * 16 + g, col = wn + j * 8 + 2 * t;
        for (int p = kk; p < kk + MMA_K; ++p) {
          const float lo = operand_value(at[row * LDS + p]), hi = operand_value(at[(row + 8) * LDS + p]);
          const float b0 = operand_value(bt[col * LDS + p]), b1 = operand_value(bt[(col + 1) * LDS + p]);
          acc[i][j][0] = fma(lo, b0, acc[i][j][0]), acc[i][j][1] = fma(lo, b1, acc[i][j][1]);
          acc[i][j][2] = fma(hi, b0, acc[i][j][2]), acc[i][j][3] = fma(hi, b1, acc[i][j][3]);
        }
      }
#else
    uint fa[4][4], fb[4][2];
#if LDMATRIX
    // A: matrices (rows 0-7, k 0-15 bytes), (8-15, 0-15), (0-7, 16-31), (8-15, 16-31) of a 16-row
    // tile = a0..a3. B: for n-tiles j, j + 1: (j, bytes 0-15), (j, 16-31), (j+1, 0-15), (j+1, 16-31).
    const int k_half = (lane / 16) * 16 / (int)sizeof(elem_t);  // 16 bytes, in elements
#pragma unroll
    for (int i = 0; i < 4; ++i)
      LDMATRIX_X4(fa[i], shared_address(at + (wm + i * 16 + lane % 16) * LDS + kk + k_half));
#pragma unroll
    for (int j = 0; j < 4; j += 2) {
      uint r[4];
      LDMATRIX_X4(r, shared_address(bt + (wn + (j + lane / 16) * 8 + lane % 8) * LDS + kk +
                                    ((lane / 8) % 2) * 16 / (int)sizeof(elem_t)));
      fb[j][0] = r[0], fb[j][1] = r[1], fb[j + 1][0] = r[2], fb[j + 1][1] = r[3];
    }
#else
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int row = wm + i * 16 + g;
#if PREC == 1
      fa[i][0] = tile_word(at, row, kk + 2 * t), fa[i][1] = tile_word(at, row + 8, kk + 2 * t);
      fa[i][2] = tile_word(at, row, kk + 2 * t + 8), fa[i][3] = tile_word(at, row + 8, kk + 2 * t + 8);
#else
      fa[i][0] = tile_word(at, row, kk + t), fa[i][1] = tile_word(at, row + 8, kk + t);
      fa[i][2] = tile_word(at, row, kk + t + 4), fa[i][3] = tile_word(at, row + 8, kk + t + 4);
#endif
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int col = wn + j * 8 + g;
#if PREC == 1
      fb[j][0] = tile_word(bt, col, kk + 2 * t), fb[j][1] = tile_word(bt, col, kk + 2 * t + 8);
#else
      fb[j][0] = tile_word(bt, col, kk + t), fb[j][1] = tile_word(bt, col, kk + t + 4);
#endif
    }
#endif
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) MMA(acc[i][j], fa[i], fb[j]);
#endif
  }
}

// c(row, col) = alpha * acc + beta * c for the warp's outputs inside (m, n); c is (m, n) row-major.
__attribute__((always_inline)) inline void store_acc(__global float* c, float acc[4][4][4], int m, int n, int r0, int c0, int lane,
                      float alpha, float beta) {
  const int g = lane / 4, t = lane % 4;
#if !EMULATE
#pragma unroll
#endif
  for (int i = 0; i < 4; ++i)
#if !EMULATE
#pragma unroll
#endif
    for (int j = 0; j < 4; ++j)
#if !EMULATE
#pragma unroll
#endif
      for (int e = 0; e < 4; ++e) {
        const int row = r0 + i * 16 + g + (e / 2) * 8, col = c0 + j * 8 + 2 * t + e % 2;
        if (row < m && col < n) {
          __global float* out = c + (long)row * n + col;
          *out = beta == 0.0f ? alpha * acc[i][j][e] : alpha * acc[i][j][e] + beta * *out;
        }
      }
}

// ---- direct form: fp32 operands of any layout, rounded while they are staged ----
__kernel __attribute__((reqd_work_group_size(256, 1, 1)))
void gemm_mma(__global const float* a, ulong a_off, int lda, long a_stride, int vec_a,
              __global const float* b, ulong b_off, int ldb, long b_stride, int vec_b,
              __global float* c, ulong c_off, int m, int n, int k, int splits, int k_per_split,
              float alpha, float beta) {
  // Group id 2 = batch * splits + split: split s sums K from s * k_per_split (a multiple of BK)
  // into its own (m, n) matrix of c; the host sums the splits afterwards.
  const int z = get_group_id(2) / splits, k_lo = get_group_id(2) % splits * k_per_split;
  a += a_off + z * a_stride + (TA ? (long)k_lo * lda : k_lo);
  b += b_off + z * b_stride + (TB ? k_lo : (long)k_lo * ldb);
  c += c_off + (long)get_group_id(2) * m * n;
  k = min(k - k_lo, k_per_split);
  __local elem_t as[2][BM * LDS] __attribute__((aligned(16)));
  __local elem_t bs[2][BN * LDS] __attribute__((aligned(16)));
  const int m0 = get_group_id(1) * BM, n0 = get_group_id(0) * BN;
  const int tid = get_local_id(0), warp = tid / 32, lane = tid % 32;
  const int wm = (warp / 4) * 64, wn = (warp % 4) * 32;  // the warp's corner within the tile
  // op(A) rows m0.., stored (m, k) or (k, m); op(B) columns n0.., stored (n, k) or (k, n).
  __global const float* a_tile = a + (TA ? m0 : (long)m0 * lda);
  __global const float* b_tile = b + (TB ? (long)n0 * ldb : n0);
  const int a_rows = m - m0, b_rows = n - n0;
  float4 va[GROUPS], vb[GROUPS];
#define FETCH(k0)                                                                                    \
  for (int q = 0; q < GROUPS; ++q) {                                                                 \
    const int2 sa = group_slot(tid + q * 256, A_KCONTIG), sb = group_slot(tid + q * 256, B_KCONTIG); \
    va[q] = fetch_group(a_tile, lda, a_rows, k, sa.x, (k0) + sa.y, A_KCONTIG, vec_a);                \
    vb[q] = fetch_group(b_tile, ldb, b_rows, k, sb.x, (k0) + sb.y, B_KCONTIG, vec_b);                \
  }
#define STORE(buf)                                                                      \
  for (int q = 0; q < GROUPS; ++q) {                                                    \
    put_group(as[buf], group_slot(tid + q * 256, A_KCONTIG), va[q]);                    \
    put_group(bs[buf], group_slot(tid + q * 256, B_KCONTIG), vb[q]);                    \
  }
  float acc[4][4][4] = {{{0.0f}}};  // [m tile][n tile][c0..c3]
#if !EMULATE
#pragma unroll
#endif
  FETCH(0)
#if !EMULATE
#pragma unroll
#endif
  STORE(0)
  barrier(CLK_LOCAL_MEM_FENCE);
  int buf = 0;
  for (int k0 = 0; k0 < k; k0 += BK) {
    const bool more = k0 + BK < k;
    if (more) {
#if !EMULATE
#pragma unroll
#endif
      FETCH(k0 + BK)
    }
    mma_k_step(as[buf], bs[buf], acc, wm, wn, lane);
    if (more) {
#if !EMULATE
#pragma unroll
#endif
      STORE(buf ^ 1)
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    buf ^= 1;
  }
#undef FETCH
#undef STORE
  store_acc(c, acc, m, n, m0 + wm, n0 + wn, lane, alpha, beta);
}

// ---- packed form ----

// op(X) (rows x k; stored (rows, k) when kcontig, else (k, rows); leading dimension ld, batch
// stride `stride`; vec: offsets, ld and stride are multiples of 4) -> xp (batch, rows_p, kp)
// rounded to the operand type, zero outside rows x k. A work-group of 256 copies a block of 64
// rows x 32 k through local memory (both reads coalesced, whichever the layout); launch
// (kp / 32 * 256, rows_p / 64, batch) with local (256, 1, 1).
__kernel __attribute__((reqd_work_group_size(256, 1, 1)))
void mma_pack(__global const float* x, ulong x_off, int ld, long stride, int kcontig, int vec, int rows,
              int k, __global PACKED_T* xp_words, ulong xp_off, int rows_p, int kp) {
  __global elem_t* xp = (__global elem_t*)xp_words;
  __local float tile[64][33];  // [row][k], padded against bank conflicts
  const int tid = get_local_id(0), k0 = get_group_id(0) * 32, r0 = get_group_id(1) * 64;
  x += x_off + get_group_id(2) * stride;
  xp += xp_off + (long)get_group_id(2) * rows_p * kp;
  if (kcontig) {  // work-item: row tid / 4, k (tid % 4) * 8 .. + 7 (two groups)
    const int r = tid / 4, kk = (tid % 4) * 8;
    for (int h = 0; h < 2; ++h) {
      const float4 v = fetch_group(x, ld, rows, k, r0 + r, k0 + kk + 4 * h, true, vec);
      tile[r][kk + 4 * h] = v.s0, tile[r][kk + 4 * h + 1] = v.s1;
      tile[r][kk + 4 * h + 2] = v.s2, tile[r][kk + 4 * h + 3] = v.s3;
    }
  } else {  // work-item: row tid % 64, k tid / 64 + 4 j: a warp reads 32 consecutive floats
    const int r = tid % 64;
    for (int j = 0; j < 8; ++j) tile[r][tid / 64 + 4 * j] = load1(x, ld, rows, k, r0 + r, k0 + tid / 64 + 4 * j, false);
  }
  barrier(CLK_LOCAL_MEM_FENCE);
  const int r = tid / 4, kk = (tid % 4) * 8;  // 8 values of one row: two groups, 16 or 32 bytes
  __global uint* out = (__global uint*)(xp + (long)(r0 + r) * kp + k0 + kk);
  for (int h = 0; h < 2; ++h) {
    const float4 v = (float4)(tile[r][kk + 4 * h], tile[r][kk + 4 * h + 1], tile[r][kk + 4 * h + 2],
                              tile[r][kk + 4 * h + 3]);
    STORE_GROUP(round_group(v), out + h * 4 * (int)sizeof(elem_t) / 4);
  }
}

#if CP_ASYNC
// 16 bytes from global to local memory, asynchronously (cp.async.cg: cached in L2 only).
#define CP_ASYNC_16(dst, src)                                                                     \
  asm volatile("{\n .reg .u64 g;\n cvta.to.global.u64 g, %1;\n cp.async.cg.shared.global [%0], [g], 16;\n}" \
               :: "r"(shared_address(dst)), "l"(src) : "memory")
#define CP_ASYNC_WAIT_ALL() asm volatile("cp.async.commit_group;\n cp.async.wait_group 0;" ::: "memory")
#define CP_ASYNC_COMMIT() asm volatile("cp.async.commit_group;" ::: "memory")
#endif

// C = alpha * op(A) op(B) + beta * C from packed operands: ap (batch_a, mp, kp), bp (batch_b, np,
// kp) (b_stride 0: one B for every batch), kp a multiple of 32. Split K as in gemm_mma. Work-item
// tid stages 16-byte chunks tid and tid + 256 of each tile (chunk q: row q / 4, part q % 4).
__kernel __attribute__((reqd_work_group_size(256, 1, 1)))
void gemm_mma_packed(__global const PACKED_T* a_words, ulong ap_off, long a_stride,
                     __global const PACKED_T* b_words, ulong bp_off, long b_stride, __global float* c,
                     ulong c_off, int m, int n, int kp, int splits, int k_per_split, float alpha, float beta) {
  __global const elem_t* ap = (__global const elem_t*)a_words;
  __global const elem_t* bp = (__global const elem_t*)b_words;
  const int z = get_group_id(2) / splits, k_lo = get_group_id(2) % splits * k_per_split;
  const int m0 = get_group_id(1) * BM, n0 = get_group_id(0) * BN;
  ap += ap_off + z * a_stride + (long)m0 * kp + k_lo;
  bp += bp_off + z * b_stride + (long)n0 * kp + k_lo;
  c += c_off + (long)get_group_id(2) * m * n;
  const int k = min(kp - k_lo, k_per_split);
  __local elem_t as[2][BM * LDS] __attribute__((aligned(16)));
  __local elem_t bs[2][BN * LDS] __attribute__((aligned(16)));
  const int tid = get_local_id(0), warp = tid / 32, lane = tid % 32;
  const int wm = (warp / 4) * 64, wn = (warp % 4) * 32;
  const int CE = 16 / (int)sizeof(elem_t);  // elements per 16-byte chunk
  // Chunk q of a tile: global offset (q / 4) * kp + (q % 4) * CE (+ k0), local (q / 4) * LDS + (q % 4) * CE.
  const int q0 = tid, q1 = tid + 256;
  const long g0 = (long)(q0 / 4) * kp + (q0 % 4) * CE, g1 = (long)(q1 / 4) * kp + (q1 % 4) * CE;
  const int l0 = (q0 / 4) * LDS + (q0 % 4) * CE, l1 = (q1 / 4) * LDS + (q1 % 4) * CE;
  float acc[4][4][4] = {{{0.0f}}};
#if CP_ASYNC
#define STAGE(buf, k0)                                 \
  CP_ASYNC_16(as[buf] + l0, ap + g0 + (k0));           \
  CP_ASYNC_16(as[buf] + l1, ap + g1 + (k0));           \
  CP_ASYNC_16(bs[buf] + l0, bp + g0 + (k0));           \
  CP_ASYNC_16(bs[buf] + l1, bp + g1 + (k0));
  STAGE(0, 0)
  CP_ASYNC_WAIT_ALL();
  barrier(CLK_LOCAL_MEM_FENCE);
  int buf = 0;
  for (int k0 = 0; k0 < k; k0 += BK) {
    const bool more = k0 + BK < k;
    if (more) {
      STAGE(buf ^ 1, k0 + BK)
      CP_ASYNC_COMMIT();
    }
    mma_k_step(as[buf], bs[buf], acc, wm, wn, lane);
    CP_ASYNC_WAIT_ALL();
    barrier(CLK_LOCAL_MEM_FENCE);
    buf ^= 1;
  }
#undef STAGE
#else
  uint4 ra0, ra1, rb0, rb1;  // the next step's chunks, held in registers across the products
#define FETCH(k0)                                                   \
  ra0 = *(__global const uint4*)(ap + g0 + (k0));                   \
  ra1 = *(__global const uint4*)(ap + g1 + (k0));                   \
  rb0 = *(__global const uint4*)(bp + g0 + (k0));                   \
  rb1 = *(__global const uint4*)(bp + g1 + (k0));
#define STORE(buf)                                                  \
  *(__local uint4*)(as[buf] + l0) = ra0;                            \
  *(__local uint4*)(as[buf] + l1) = ra1;                            \
  *(__local uint4*)(bs[buf] + l0) = rb0;                            \
  *(__local uint4*)(bs[buf] + l1) = rb1;
  FETCH(0)
  STORE(0)
  barrier(CLK_LOCAL_MEM_FENCE);
  int buf = 0;
  for (int k0 = 0; k0 < k; k0 += BK) {
    const bool more = k0 + BK < k;
    if (more) {
      FETCH(k0 + BK)
    }
    mma_k_step(as[buf], bs[buf], acc, wm, wn, lane);
    if (more) {
      STORE(buf ^ 1)
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    buf ^= 1;
  }
#undef FETCH
#undef STORE
#endif
  store_acc(c, acc, m, n, m0 + wm, n0 + wn, lane, alpha, beta);
}
