// Mixture-of-Experts routing and combining kernels (deterministic: fixed-order loops, no atomics).
// Shapes: N tokens, X experts, K top-k, D width, F expert hidden, R = N * K routed rows.
// Kernels:
//   topk_fwd        scores (N, X) -> idx (N, K) i32, w (N, K): the K largest scores s of a row in
//                   decreasing order (ties: lower expert index first) and their weights by `mode`
//                   (ops::TopKWeights): MODE_RENORM w = s / sum(s_sel); MODE_RAW w = s;
//                   MODE_SOFTMAX w = exp(s - s_max) / sum exp(s_sel - s_max). One work-item per row.
//   topk_bwd        ds[n, j] (+)= the gradient of w[n, k] for j = idx[n, k], 0 for unselected j:
//                   RENORM (dw_k - sum_k' dw_k' w_k') / S_n with S_n = sum_k s[n, idx[n, k]];
//                   RAW dw_k; SOFTMAX w_k (dw_k - sum_k' dw_k' w_k'). One work-item per row.
//   moe_token_of    token_of[i] = perm[i] / K: the token of sorted routed row i. perm, token_of: (R)
//   moe_offsets     offsets[e] = #{i : sorted_keys[i] < e} for e in [0, X] (binary search);
//                   counts[e] = offsets[e + 1] - offsets[e] for e < X. sorted_keys: (R) ascending
//                   i32; offsets: (X + 1) i32; counts: (X) i32. X + 1 work-items.
//   row_scale_fwd   y[r, d] = w[r] * x[r, d]               x, y: (R, D); w: (R)
//   row_scale_bwd_x dx[r, d] (+)= w[r] * dy[r, d]
//   row_scale_bwd_w dw[r] (+)= sum_d dy[r, d] * x[r, d] (increasing d). One work-item per row.
//   row_scale_fwd_vec, row_scale_bwd_x_vec   the CPU mapping (ops/mapping.hpp) of the two
//                   above: global (ceil(D / 16), R), one work-item per 16 columns of a row
//   row_scale_bwd_w_row   row_scale_bwd_w in the CPU mapping: the row in float16 steps (a
//                   scalar tail), lane sums folded by a fixed tree
//   balance_fwd     out[0] = X * sum_e counts[e] * (psum[e] / N) / (N * K), e increasing; psum:
//                   (X) column sums of probs. One work-item.
//   balance_bwd     dprobs[n, e] (+)= g[0] * X * counts[e] / (N * K * N).   dprobs: (N, X)
//   zloss_lse       lse[n] = logsumexp(logits[n, :]); sq[n] = lse[n]^2.     logits: (N, X)
//   zloss_bwd       dlogits[n, j] (+)= g[0] * (2 / N) * lse[n] * exp(logits[n, j] - lse[n])
//   swiglu_fwd      a = silu(h1) * h3                          h1, h3, a: (n)
//   swiglu_bwd      dh1 = da * h3 * silu'(h1), dh3 = da * silu(h1); overwrites both (no acc: the
//                   outputs are private scratch of expert_mlp). dh1 may alias da: each element
//                   is read before it is written.
// -D knob: VEC (1 or 16, default 1), elements per work-item of swiglu_fwd / swiglu_bwd (launch
// ceil(n / VEC) work-items): 16 is the CPU mapping (ops/mapping.hpp: float16 math), 1 the GPU's.
#ifndef VEC
#define VEC 1
#endif

inline float moe_sigmoid(float x) { return 1.0f / (1.0f + exp(-x)); }
inline floatv moe_sigmoid_v(floatv x) { return 1.0f / (1.0f + exp(-x)); }

#define MODE_RENORM 0
#define MODE_RAW 1
#define MODE_SOFTMAX 2

__kernel void topk_fwd(__global const float* probs, ulong probs_off, __global int* idx, ulong idx_off,
                       __global float* w, ulong w_off, long n, long x, long k, int mode) {
  probs += probs_off; idx += idx_off; w += w_off;
  long r = get_global_id(0);
  if (r >= n) return;
  __global const float* p = probs + r * x;
  __global int* id = idx + r * k;
  float s = 0.0f;
  for (int j = 0; j < k; ++j) {
    int best = -1;
    float bp = 0.0f;
    for (int e = 0; e < x; ++e) {
      int taken = 0;
      for (int q = 0; q < j; ++q) taken |= (id[q] == e);
      if (taken) continue;
      if (best < 0 || p[e] > bp) { best = e; bp = p[e]; }
    }
    id[j] = best;
    s += mode == MODE_SOFTMAX ? exp(bp - p[id[0]]) : bp;  // id[0] holds the row's maximum
  }
  for (int j = 0; j < k; ++j)
    w[r * k + j] = mode == MODE_RAW       ? p[id[j]]
                   : mode == MODE_RENORM ? p[id[j]] / s
                                         : exp(p[id[j]] - p[id[0]]) / s;
}

__kernel void topk_bwd(__global const float* probs, ulong probs_off, __global const int* idx,
                       ulong idx_off, __global const float* dw, ulong dw_off, __global float* dp,
                       ulong dp_off, long n, long x, long k, int mode, int acc) {
  probs += probs_off; idx += idx_off; dw += dw_off; dp += dp_off;
  long r = get_global_id(0);
  if (r >= n) return;
  __global const float* p = probs + r * x;
  __global const int* id = idx + r * k;
  float s = 0.0f;
  for (int j = 0; j < k; ++j) s += mode == MODE_SOFTMAX ? exp(p[id[j]] - p[id[0]]) : p[id[j]];
  float dot = 0.0f;  // sum_j dw_j w_j (RENORM, SOFTMAX)
  for (int j = 0; j < k; ++j)
    dot += dw[r * k + j] * (mode == MODE_SOFTMAX ? exp(p[id[j]] - p[id[0]]) / s : p[id[j]] / s);
  for (int e = 0; e < x; ++e) {
    float v = 0.0f;
    for (int j = 0; j < k; ++j)
      if (id[j] == e)
        v = mode == MODE_RAW       ? dw[r * k + j]
            : mode == MODE_RENORM ? (dw[r * k + j] - dot) / s
                                  : exp(p[id[j]] - p[id[0]]) / s * (dw[r * k + j] - dot);
    ACC_STORE(dp, r * x + e, v, acc);
  }
}

__kernel void moe_token_of(__global const int* perm, ulong perm_off, __global int* token_of,
                           ulong token_of_off, long r, long k) {
  perm += perm_off; token_of += token_of_off;
  long i = get_global_id(0);
  if (i < r) token_of[i] = perm[i] / k;
}

inline long moe_lower_bound(__global const int* keys, long r, int e) {
  long lo = 0, hi = r;
  while (lo < hi) {
    long mid = (lo + hi) / 2;
    if (keys[mid] < e) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

__kernel void moe_offsets(__global const int* keys, ulong keys_off, __global int* offsets,
                          ulong offsets_off, __global int* counts, ulong counts_off, long r, long x) {
  keys += keys_off; offsets += offsets_off; counts += counts_off;
  int e = get_global_id(0);
  if (e > x) return;
  long lo = moe_lower_bound(keys, r, e);
  offsets[e] = (int)lo;
  if (e < x) counts[e] = (int)(moe_lower_bound(keys, r, e + 1) - lo);
}

__kernel void row_scale_fwd(__global const float* x, ulong x_off, __global const float* w,
                            ulong w_off, __global float* y, ulong y_off, long r, long d) {
  x += x_off; w += w_off; y += y_off;
  long i = get_global_id(0);
  if (i < r * d) y[i] = w[i / d] * x[i];
}

__kernel void row_scale_bwd_x(__global const float* w, ulong w_off, __global const float* dy,
                              ulong dy_off, __global float* dx, ulong dx_off, long r, long d,
                              int acc) {
  w += w_off; dy += dy_off; dx += dx_off;
  long i = get_global_id(0);
  if (i < r * d) ACC_STORE(dx, i, w[i / d] * dy[i], acc);
}

__kernel void row_scale_bwd_w(__global const float* x, ulong x_off, __global const float* dy,
                              ulong dy_off, __global float* dw, ulong dw_off, long r, long d,
                              int acc) {
  x += x_off; dy += dy_off; dw += dw_off;
  long row = get_global_id(0);
  if (row >= r) return;
  float s = 0.0f;
  for (long c = 0; c < d; ++c) s += dy[row * d + c] * x[row * d + c];
  ACC_STORE(dw, row, s, acc);
}

__kernel void row_scale_fwd_vec(__global const float* x, ulong x_off, __global const float* w,
                                ulong w_off, __global float* y, ulong y_off, long r, long d) {
  x += x_off; w += w_off; y += y_off;
  const long c0 = get_global_id(0) * 16, row = get_global_id(1);
  if (c0 >= d || row >= r) return;
  vstore16_part(w[row] * vload16_part(x + row * d + c0, d - c0), y + row * d + c0, d - c0);
}

__kernel void row_scale_bwd_x_vec(__global const float* w, ulong w_off, __global const float* dy,
                                  ulong dy_off, __global float* dx, ulong dx_off, long r, long d,
                                  int acc) {
  w += w_off; dy += dy_off; dx += dx_off;
  const long c0 = get_global_id(0) * 16, row = get_global_id(1);
  if (c0 >= d || row >= r) return;
  const float16 g = w[row] * vload16_part(dy + row * d + c0, d - c0);
  __global float* o = dx + row * d + c0;
  vstore16_part(acc ? vload16_part(o, d - c0) + g : g, o, d - c0);
}

__kernel void row_scale_bwd_w_row(__global const float* x, ulong x_off, __global const float* dy,
                                  ulong dy_off, __global float* dw, ulong dw_off, long r, long d,
                                  int acc) {
  x += x_off; dy += dy_off; dw += dw_off;
  const long row = get_global_id(0);
  if (row >= r) return;
  __global const float* xr = x + row * d;
  __global const float* dyr = dy + row * d;
  float16 s16 = 0.0f;
  long c = 0;
  for (; c + 16 <= d; c += 16) s16 += vload16(0, dyr + c) * vload16(0, xr + c);
  float s = hsum16(s16);
  for (; c < d; ++c) s += dyr[c] * xr[c];
  ACC_STORE(dw, row, s, acc);
}

__kernel void balance_fwd(__global const float* psum, ulong psum_off, __global const int* counts,
                          ulong counts_off, __global float* out, ulong out_off, long n, long x,
                          long k) {
  psum += psum_off; counts += counts_off; out += out_off;
  if (get_global_id(0) != 0) return;
  float s = 0.0f;
  for (int e = 0; e < x; ++e) s += (float)counts[e] * (psum[e] / (float)n);
  out[0] = (float)x * s / ((float)n * (float)k);
}

__kernel void balance_bwd(__global const float* g, ulong g_off, __global const int* counts,
                          ulong counts_off, __global float* dp, ulong dp_off, long n, long x, long k,
                          int acc) {
  g += g_off; counts += counts_off; dp += dp_off;
  long i = get_global_id(0);
  if (i >= n * x) return;
  int e = (int)(i % x);
  float v = g[0] * ((float)x * (float)counts[e] / ((float)n * (float)k * (float)n));
  ACC_STORE(dp, i, v, acc);
}

__kernel void zloss_lse(__global const float* logits, ulong logits_off, __global float* lse,
                        ulong lse_off, __global float* sq, ulong sq_off, long n, long x) {
  logits += logits_off; lse += lse_off; sq += sq_off;
  long r = get_global_id(0);
  if (r >= n) return;
  __global const float* l = logits + r * x;
  float m = l[0];
  for (int e = 1; e < x; ++e) m = fmax(m, l[e]);
  float s = 0.0f;
  for (int e = 0; e < x; ++e) s += exp(l[e] - m);
  float v = m + log(s);
  lse[r] = v;
  sq[r] = v * v;
}

__kernel void zloss_bwd(__global const float* logits, ulong logits_off, __global const float* lse,
                        ulong lse_off, __global const float* g, ulong g_off, __global float* dl,
                        ulong dl_off, long n, long x, int acc) {
  logits += logits_off; lse += lse_off; g += g_off; dl += dl_off;
  long i = get_global_id(0);
  if (i >= n * x) return;
  long r = i / x;
  float v = g[0] * (2.0f / (float)n) * lse[r] * exp(logits[i] - lse[r]);
  ACC_STORE(dl, i, v, acc);
}

__kernel void swiglu_fwd(__global const float* h1, ulong h1_off, __global const float* h3,
                         ulong h3_off, __global float* a, ulong a_off, long n) {
  h1 += h1_off; h3 += h3_off; a += a_off;
  const long i = get_global_id(0) * VEC;
  if (i >= n) return;
  const floatv x1 = LOADV(h1, i, n);
  STOREV(x1 * moe_sigmoid_v(x1) * LOADV(h3, i, n), a, i, n);
}

__kernel void swiglu_bwd(__global const float* h1, ulong h1_off, __global const float* h3,
                         ulong h3_off, __global const float* da, ulong da_off, __global float* dh1,
                         ulong dh1_off, __global float* dh3, ulong dh3_off, long n) {
  h1 += h1_off; h3 += h3_off; da += da_off; dh1 += dh1_off; dh3 += dh3_off;
  const long i = get_global_id(0) * VEC;
  if (i >= n) return;
  const floatv x1 = LOADV(h1, i, n), x3 = LOADV(h3, i, n), g = LOADV(da, i, n);
  const floatv s = moe_sigmoid_v(x1);
  STOREV(g * x3 * s * (1.0f + x1 * (1.0f - s)), dh1, i, n);
  STOREV(g * x1 * s, dh3, i, n);
}
