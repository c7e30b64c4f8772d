// Softmax over the last dimension, numerically stable (the row maximum is subtracted), and the
// fused log-softmax + cross-entropy built on the same row statistics.
// Shapes: x, y, dy, dx: (R, C) row-major, R = product of the leading dimensions.
// Kernels (a work-group per row, LOCAL work-items striding over the C columns):
//   softmax_fwd   y[r, c] = exp(x[r, c] - m_r) / s_r, with (m_r, s_r) = (max_c x, sum_c exp(x - m_r))
//                 found in one read of the row (running max and rescaled sum per work-item,
//                 merged by a tree), then a second read writes y
//   softmax_bwd   dx[r, c] (+)= y[r, c] * (dy[r, c] - sum_c' dy[r, c'] * y[r, c'])
// Knobs: LOCAL (-D, default 256): work-group size, a power of two.
//        BLOCK (-D, default 8): values each work-item loads per step of the max / sum pass.
// Deterministic: every sum is a fixed-shape local-memory tree.
// Launch exactly one group per row: the kernels have no `if (r >= rows) return;` because PoCL
// 3.1 miscompiles such an early return ahead of the tree's barriers (it corrupts memory).
//
// Fused log-softmax + cross-entropy with an ignore index, mean over the counted rows.
// Shapes: logits, dlogits: (N, V) row-major f32; targets: (N) i32; lse, row_loss: (N) f32;
// loss, inv_count, dloss: (1) f32.
// A row is counted when its target t satisfies t != ignore_index and 0 <= t < V; every other
// row (ignored, or a target out of range) adds nothing to the loss or the count and gets a
// zero gradient.
// Kernels:
//   ce_fwd    a group per row: (m, s) = (max_c x, sum_c exp(x - m)) in one pass (running max
//             and rescaled sum per work-item, merged by a tree); lse[r] = m + log(s);
//             row_loss[r] = counted ? lse[r] - x[r, t] : 0
//   ce_mean   one group: count = #counted rows; loss[0] = count ? sum(row_loss) / count : 0;
//             inv_count[0] = count ? 1 / count : 0      (saved for the backward)
//   ce_bwd    a group per row: dlogits[r, c] (+)= counted ? (exp(x[r, c] - lse[r]) - [c == t])
//             * dloss[0] * inv_count[0] : 0
// ce_mean is launched as exactly one group; the others as in softmax, one group per row.
//
// The CPU mapping (ops/mapping.hpp) of the same four row kernels: one work-item per row walks
// it in float16 steps (a scalar tail for the last C % 16 values) with the max, the sum of
// exp(x - max) and the dot product in separate passes over the row (it stays in cache); the lane
// sums are folded by a fixed tree. Launch `rows` work-items, any work-group size (no barriers).
//   softmax_fwd_row, softmax_bwd_row, ce_fwd_row, ce_bwd_row   as their group versions above
#ifndef LOCAL
#define LOCAL 256
#endif
#ifndef BLOCK
#define BLOCK 8
#endif

// Merges (m2, s2) into (m1, s1): both are (max, sum of exp(v - max)) of disjoint sets; an empty
// set is (-INFINITY, 0).
inline void sm_merge(float* m1, float* s1, float m2, float s2) {
  float m = fmax(*m1, m2);
  if (m == -INFINITY) return;  // both empty (or all -inf)
  *s1 = (*m1 == -INFINITY ? 0.0f : *s1 * exp(*m1 - m)) + (m2 == -INFINITY ? 0.0f : s2 * exp(m2 - m));
  *m1 = m;
}

// Row max and sum of exp(x - max) of this group's row; every work-item gets the result.
inline void sm_row_stats(__global const float* xr, long c_n, __local float* lm, __local float* ls,
                         float* m_out, float* s_out) {
  int l = get_local_id(0);
  // Blocks of BLOCK values per work-item (coalesced: value k of a block is at base + k * LOCAL
  // + l): one rescale per block, no data-dependent branch per value, so it vectorizes.
  float m = -INFINITY, s = 0.0f;
  for (long base = 0; base < c_n; base += BLOCK * LOCAL) {
    float a[BLOCK];
    float bm = -INFINITY;
    for (int k = 0; k < BLOCK; ++k) {
      const long c = base + k * LOCAL + l;
      a[k] = c < c_n ? xr[c] : -INFINITY;
      bm = fmax(bm, a[k]);  // fmax skips NaN; a NaN still reaches s through exp(NaN)
    }
    const float mn = fmax(m, bm);
    if (mn == -INFINITY) continue;  // only -inf (or padding) so far: still the empty set
    float bs = 0.0f;
    for (int k = 0; k < BLOCK; ++k) bs += exp(a[k] - mn);
    s = s * exp(m - mn) + bs;  // m == -INFINITY: s is 0 and exp(-inf) is 0
    m = mn;
  }
  lm[l] = m;
  ls[l] = s;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int w = LOCAL / 2; w > 0; w >>= 1) {
    if (l < w) {
      float a = lm[l], b = ls[l];
      sm_merge(&a, &b, lm[l + w], ls[l + w]);
      lm[l] = a;
      ls[l] = b;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  *m_out = lm[0];
  *s_out = ls[0];
}

__kernel __attribute__((reqd_work_group_size(LOCAL, 1, 1)))
void softmax_fwd(__global const float* x, ulong x_off, __global float* y, ulong y_off, long rows,
                 long cols) {
  x += x_off; y += y_off;
  __local float lm[LOCAL], ls[LOCAL];
  long r = get_group_id(0);
  __global const float* xr = x + r * cols;
  float m, s;
  sm_row_stats(xr, cols, lm, ls, &m, &s);
  float inv = 1.0f / s;
  for (long c = get_local_id(0); c < cols; c += LOCAL) y[r * cols + c] = exp(xr[c] - m) * inv;
}

__kernel __attribute__((reqd_work_group_size(LOCAL, 1, 1)))
void softmax_bwd(__global const float* y, ulong y_off, __global const float* dy, ulong dy_off,
                 __global float* dx, ulong dx_off, long rows, long cols, int acc) {
  y += y_off; dy += dy_off; dx += dx_off;
  __local float ls[LOCAL];
  long r = get_group_id(0);
  __global const float* yr = y + r * cols;
  __global const float* dyr = dy + r * cols;
  float v = 0.0f;
  for (long c = get_local_id(0); c < cols; c += LOCAL) v += dyr[c] * yr[c];
  float dot = group_sum(ls, v, LOCAL);
  for (long c = get_local_id(0); c < cols; c += LOCAL)
    ACC_STORE(dx, r * cols + c, yr[c] * (dyr[c] - dot), acc);
}

inline int ce_counted(int t, long v, int ignore_index) {
  return t != ignore_index && t >= 0 && (long)t < v;
}

__kernel __attribute__((reqd_work_group_size(LOCAL, 1, 1)))
void ce_fwd(__global const float* x, ulong x_off, __global const int* targets, ulong targets_off,
            __global float* lse, ulong lse_off, __global float* row_loss, ulong row_loss_off,
            long rows, long v, int ignore_index) {
  x += x_off; targets += targets_off; lse += lse_off; row_loss += row_loss_off;
  __local float lm[LOCAL], ls[LOCAL];
  const int l = get_local_id(0);
  const long r = get_group_id(0);
  __global const float* xr = x + r * v;
  float m, s;
  sm_row_stats(xr, v, lm, ls, &m, &s);
  if (l == 0) {
    const float row_lse = m + log(s);
    const int t = targets[r];
    lse[r] = row_lse;
    row_loss[r] = ce_counted(t, v, ignore_index) ? row_lse - xr[t] : 0.0f;
  }
}

__kernel __attribute__((reqd_work_group_size(LOCAL, 1, 1)))
void ce_mean(__global const float* row_loss, ulong row_loss_off, __global const int* targets,
             ulong targets_off, __global float* loss, ulong loss_off, __global float* inv_count,
             ulong inv_count_off, long rows, long v, int ignore_index) {
  row_loss += row_loss_off; targets += targets_off; loss += loss_off; inv_count += inv_count_off;
  __local float lsum[LOCAL];
  __local int lcnt[LOCAL];
  const int l = get_local_id(0);
  float s = 0.0f;
  int n = 0;
  for (long r = l; r < rows; r += LOCAL) {
    s += row_loss[r];
    n += ce_counted(targets[r], v, ignore_index);
  }
  lsum[l] = s;
  lcnt[l] = n;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int w = LOCAL / 2; w > 0; w >>= 1) {
    if (l < w) {
      lsum[l] += lsum[l + w];
      lcnt[l] += lcnt[l + w];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (l == 0) {
    const int count = lcnt[0];
    loss[0] = count > 0 ? lsum[0] / (float)count : 0.0f;
    inv_count[0] = count > 0 ? 1.0f / (float)count : 0.0f;
  }
}

__kernel __attribute__((reqd_work_group_size(LOCAL, 1, 1)))
void ce_bwd(__global const float* x, ulong x_off, __global const int* targets, ulong targets_off,
            __global const float* lse, ulong lse_off, __global const float* inv_count,
            ulong inv_count_off, __global const float* dloss, ulong dloss_off, __global float* dx,
            ulong dx_off, long rows, long v, int ignore_index, int acc) {
  x += x_off; targets += targets_off; lse += lse_off; inv_count += inv_count_off;
  dloss += dloss_off; dx += dx_off;
  const long r = get_group_id(0);
  const int t = targets[r];
  const float scale = ce_counted(t, v, ignore_index) ? dloss[0] * inv_count[0] : 0.0f;
  const float row_lse = lse[r];
  __global const float* xr = x + r * v;
  __global float* dr = dx + r * v;
  // scale == 0 (an ignored row) writes exact zeros: no exp of a possibly inf/NaN logit.
  if (acc) {
    if (scale != 0.0f)
      for (long c = get_local_id(0); c < v; c += LOCAL)
        dr[c] += (exp(xr[c] - row_lse) - (c == t ? 1.0f : 0.0f)) * scale;
  } else {
    if (scale != 0.0f)
      for (long c = get_local_id(0); c < v; c += LOCAL)
        dr[c] = (exp(xr[c] - row_lse) - (c == t ? 1.0f : 0.0f)) * scale;
    else
      for (long c = get_local_id(0); c < v; c += LOCAL) dr[c] = 0.0f;
  }
}

// ---- CPU mapping: one work-item per row --------------------------------------------------

inline float row_max(__global const float* xr, long n) {
  float16 m16 = (float16)(-INFINITY);
  long c = 0;
  for (; c + 16 <= n; c += 16) m16 = fmax(m16, vload16(0, xr + c));
  float m = hmax16(m16);
  for (; c < n; ++c) m = fmax(m, xr[c]);
  return m;
}

// sum_c exp(x[c] - m); 0 for a row of only -inf (m = -inf), as the group kernels' empty set.
inline float row_sum_exp(__global const float* xr, long n, float m) {
  if (m == -INFINITY) return 0.0f;
  float16 s16 = 0.0f;
  long c = 0;
  for (; c + 16 <= n; c += 16) s16 += exp(vload16(0, xr + c) - m);
  float s = hsum16(s16);
  for (; c < n; ++c) s += exp(xr[c] - m);
  return s;
}

__kernel void softmax_fwd_row(__global const float* x, ulong x_off, __global float* y, ulong y_off,
                              long rows, long cols) {
  x += x_off; y += y_off;
  const long r = get_global_id(0);
  if (r >= rows) return;
  __global const float* xr = x + r * cols;
  __global float* yr = y + r * cols;
  const float m = row_max(xr, cols);
  const float inv = 1.0f / row_sum_exp(xr, cols, m);
  long c = 0;
  for (; c + 16 <= cols; c += 16) vstore16(exp(vload16(0, xr + c) - m) * inv, 0, yr + c);
  for (; c < cols; ++c) yr[c] = exp(xr[c] - m) * inv;
}

__kernel void softmax_bwd_row(__global const float* y, ulong y_off, __global const float* dy,
                              ulong dy_off, __global float* dx, ulong dx_off, long rows, long cols,
                              int acc) {
  y += y_off; dy += dy_off; dx += dx_off;
  const long r = get_global_id(0);
  if (r >= rows) return;
  __global const float* yr = y + r * cols;
  __global const float* dyr = dy + r * cols;
  __global float* dxr = dx + r * cols;
  float16 d16 = 0.0f;
  long c = 0;
  for (; c + 16 <= cols; c += 16) d16 += vload16(0, dyr + c) * vload16(0, yr + c);
  float dot = hsum16(d16);
  for (; c < cols; ++c) dot += dyr[c] * yr[c];
  for (c = 0; c + 16 <= cols; c += 16) {
    float16 g = vload16(0, yr + c) * (vload16(0, dyr + c) - dot);
    vstore16(acc ? vload16(0, dxr + c) + g : g, 0, dxr + c);
  }
  for (; c < cols; ++c) ACC_STORE(dxr, c, yr[c] * (dyr[c] - dot), acc);
}

__kernel void ce_fwd_row(__global const float* x, ulong x_off, __global const int* targets,
                         ulong targets_off, __global float* lse, ulong lse_off,
                         __global float* row_loss, ulong row_loss_off, long rows, long v,
                         int ignore_index) {
  x += x_off; targets += targets_off; lse += lse_off; row_loss += row_loss_off;
  const long r = get_global_id(0);
  if (r >= rows) return;
  __global const float* xr = x + r * v;
  const float m = row_max(xr, v);
  const float row_lse = m + log(row_sum_exp(xr, v, m));
  const int t = targets[r];
  lse[r] = row_lse;
  row_loss[r] = ce_counted(t, v, ignore_index) ? row_lse - xr[t] : 0.0f;
}

__kernel void ce_bwd_row(__global const float* x, ulong x_off, __global const int* targets,
                         ulong targets_off, __global const float* lse, ulong lse_off,
                         __global const float* inv_count, ulong inv_count_off,
                         __global const float* dloss, ulong dloss_off, __global float* dx,
                         ulong dx_off, long rows, long v, int ignore_index, int acc) {
  x += x_off; targets += targets_off; lse += lse_off; inv_count += inv_count_off;
  dloss += dloss_off; dx += dx_off;
  const long r = get_global_id(0);
  if (r >= rows) return;
  const int t = targets[r];
  const float scale = ce_counted(t, v, ignore_index) ? dloss[0] * inv_count[0] : 0.0f;
  const float row_lse = lse[r];
  __global const float* xr = x + r * v;
  __global float* dr = dx + r * v;
  // scale == 0 (an ignored row) writes exact zeros: no exp of a possibly inf/NaN logit.
  if (scale == 0.0f) {
    if (!acc)
      for (long c = 0; c < v; ++c) dr[c] = 0.0f;
    return;
  }
  const int16 lane = (int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  long c = 0;
  for (; c + 16 <= v; c += 16) {
    // onehot: 1 in the lane holding column t (comparisons give -1 for true)
    const float16 onehot = -convert_float16((int16)(int)(t - c) == lane);
    float16 g = (exp(vload16(0, xr + c) - row_lse) - onehot) * scale;
    vstore16(acc ? vload16(0, dr + c) + g : g, 0, dr + c);
  }
  for (; c < v; ++c) ACC_STORE(dr, c, (exp(xr[c] - row_lse) - (c == t ? 1.0f : 0.0f)) * scale, acc);
}
