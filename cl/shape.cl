// Shape ops: column-range copies (split / concat along the last dimension) and a tiled
// transpose of the last two dimensions.
// Kernels:
//   copy_cols        dst[r, dst_col0 + j] (+)= src[r, src_col0 + j] for r < rows, j < n
//                    src: (rows, src_cols); dst: (rows, dst_cols); one work-item per (r, j)
//   place_cols       dst[r, c] = src[r, c - col0] for col0 <= c < col0 + n, else 0
//                    src: (rows, n); dst: (rows, D); overwrites all of dst (never reads it)
//   transpose_last2  y[b, j, i] (+)= x[b, i, j]     x: (batch, M, N); y: (batch, N, M)
//                    a TILE x TILE work-group moves one tile through local memory (padded by
//                    one column against bank conflicts); global size (N, batch * m_pad) with
//                    m_pad = M rounded up to a multiple of TILE, so a tile never spans batches.
//   copy_cols_row    copy_cols, one work-item per row r < rows (the CPU mapping, ops/mapping.hpp:
//                    float16 steps along the row, a scalar tail)
//   place_cols_row   place_cols, one work-item per row r < rows (the CPU mapping)
// Knobs: TILE (-D, default 16): the transpose tile edge and work-group size TILE x TILE.
#ifndef TILE
#define TILE 16
#endif

__kernel void copy_cols(__global const float* src, ulong src_off, __global float* dst,
                        ulong dst_off, long rows, long src_cols, long src_col0, long dst_cols,
                        long dst_col0, long n, int acc) {
  src += src_off; dst += dst_off;
  long i = get_global_id(0);
  if (i >= rows * n) return;
  long r = i / n, j = i - r * n;
  ACC_STORE(dst, r * dst_cols + dst_col0 + j, src[r * src_cols + src_col0 + j], acc);
}

__kernel void place_cols(__global const float* src, ulong src_off, __global float* dst,
                         ulong dst_off, long rows, long d, long col0, long n) {
  src += src_off; dst += dst_off;
  long i = get_global_id(0);
  if (i >= rows * d) return;
  long r = i / d, j = i - r * d - col0;
  dst[i] = (j >= 0 && j < n) ? src[r * n + j] : 0.0f;
}

__kernel __attribute__((reqd_work_group_size(TILE, TILE, 1)))
void transpose_last2(__global const float* x, ulong x_off, __global float* y, ulong y_off,
                     long m, long n, long m_pad, int acc) {
  x += x_off; y += y_off;
  __local float tile[TILE][TILE + 1];
  const int lx = get_local_id(0), ly = get_local_id(1);
  const long j = get_global_id(0), gy = get_global_id(1);
  const long b = gy / m_pad, i = gy - b * m_pad;
  x += b * m * n;
  y += b * m * n;
  if (i < m && j < n) tile[ly][lx] = x[i * n + j];
  barrier(CLK_LOCAL_MEM_FENCE);
  const long oj = j - lx + ly;  // row of y  (a column of x)
  const long oi = i - ly + lx;  // column of y (a row of x)
  if (oj < n && oi < m) ACC_STORE(y, oj * m + oi, tile[lx][ly], acc);
}

// ---- CPU mapping: one work-item per row --------------------------------------------------

// dst[0, n) (+)= src[0, n) in float16 steps.
inline void copy_run(__global const float* src, __global float* dst, long n, int acc) {
  long j = 0;
  for (; j + 16 <= n; j += 16) {
    const float16 v = vload16(0, src + j);
    vstore16(acc ? vload16(0, dst + j) + v : v, 0, dst + j);
  }
  for (; j < n; ++j) ACC_STORE(dst, j, src[j], acc);
}

inline void zero_run(__global float* dst, long n) {
  long j = 0;
  for (; j + 16 <= n; j += 16) vstore16((float16)0.0f, 0, dst + j);
  for (; j < n; ++j) dst[j] = 0.0f;
}

__kernel void copy_cols_row(__global const float* src, ulong src_off, __global float* dst,
                            ulong dst_off, long rows, long src_cols, long src_col0, long dst_cols,
                            long dst_col0, long n, int acc) {
  src += src_off; dst += dst_off;
  const long r = get_global_id(0);
  if (r >= rows) return;
  copy_run(src + r * src_cols + src_col0, dst + r * dst_cols + dst_col0, n, acc);
}

__kernel void place_cols_row(__global const float* src, ulong src_off, __global float* dst,
                             ulong dst_off, long rows, long d, long col0, long n) {
  src += src_off; dst += dst_off;
  const long r = get_global_id(0);
  if (r >= rows) return;
  __global float* dr = dst + r * d;
  zero_run(dr, col0);
  copy_run(src + r * n, dr + col0, n, 0);
  zero_run(dr + col0 + n, d - col0 - n);
}
