// A Mixture-of-Experts layer for a few decoding rows, entirely on the device (ops::moe_decode):
// the router writes each row's expert ids and weights to device buffers and the expert kernels
// read them there, so nothing returns to the host.
// Layouts (row-major): x, xn, out, extra: (T, D)   g: (D)   gate: (X, D)
//   idx: (T, K) int   wts: (T, K)   act: (T, K, F)
//   w1, w3: (X, F, D) the experts' stacked gate / up weights   w2: (X, D, F) the down weights
// Kernels:
//   moe_decode_route  a group per row t: xn = x · rsqrt(mean(x²) + eps) · g; logits = gate · xn;
//                     the K experts and their weights (mode 0: top-K of softmax(logits),
//                     renormalised; 1: the same, not renormalised; 2: top-K of the logits, softmax
//                     over those K); ties go to the lower expert index; idx in descending order
//   moe_decode_up     a group per (t, k, f): e = idx[t, k]; act = silu(w1[e, f]·xn[t]) · (w3[e, f]·xn[t])
//                     (SWIGLU) or gelu(w1[e, f]·xn[t]) (erf form)
//   moe_decode_down   a group per (t, d): out = x + scale · (Σ_k wts[t, k] · (w2[idx[t, k], d]·act[t, k])
//                     [+ extra[t, d]]), k in order
// A "group" is LWG work-items (gpu mapping: 4-wide strided chunks, summed by a local tree) or one
// work-item (LWG = 1, cpu mapping: float8 chunks, launched 64 items to a work-group).
// Knobs: -DLWG=1|2^p, -DNX=experts (<= 64), -DTOPK=K, -DSWIGLU (else GELU).
// Deterministic: fixed summation orders, no atomics. No early return before a barrier.
#ifndef LWG
#define LWG 64
#endif
#ifndef NX
#define NX 8
#endif
#ifndef TOPK
#define TOPK 2
#endif

#if LWG > 1
#define GROUP_ID get_group_id(0)
#define LID get_local_id(0)
#else
#define GROUP_ID get_global_id(0)
#define LID 0
#endif

// This work-item's share of a · b over n elements.
inline float part_dot(__global const float* a, __global const float* b, int n, int lid) {
#if LWG > 1
  float s = 0.0f;
  const int n4 = n / 4;
  for (int c = lid; c < n4; c += LWG) s += dot(vload4(c, a), vload4(c, b));
  for (int k = 4 * n4 + lid; k < n; k += LWG) s += a[k] * b[k];
  return s;
#else
  float8 s8 = (float8)0.0f;
  const int n8 = n / 8;
  for (int c = 0; c < n8; ++c) s8 = fma(vload8(c, a), vload8(c, b), s8);
  const float4 s4 = s8.lo + s8.hi;
  float s = (s4.x + s4.y) + (s4.z + s4.w);
  for (int k = 8 * n8; k < n; ++k) s += a[k] * b[k];
  return s;
#endif
}

// The sum of v over the group, for every work-item of it (call in uniform control flow):
// cl/common.cl's fixed tree.
#if LWG > 1
#define GROUP_SUM(v, red) group_sum(red, (v), LWG)
#else
#define GROUP_SUM(v, red) (v)
#endif

inline float silu_f(float v) { return v / (1.0f + exp(-v)); }

__kernel void moe_decode_route(__global const float* x, ulong x_off, __global const float* g, ulong g_off,
                               __global const float* gate, ulong gate_off, __global float* xn, ulong xn_off,
                               __global int* idx, ulong idx_off, __global float* wts, ulong wts_off, long T_arg,
                               long D_arg, float eps, int mode) {
  x += x_off; g += g_off; gate += gate_off; xn += xn_off; idx += idx_off; wts += wts_off;
  const int T = T_arg, D = D_arg, t = GROUP_ID, lid = LID;
  __local float red[LWG];
  const bool live = t < T;
  __global const float* xr = x + (long)(live ? t : 0) * D;
  const float ss = GROUP_SUM(live ? part_dot(xr, xr, D, lid) : 0.0f, red);
  const float inv = rsqrt(ss / (float)D + eps);
  float part[NX];
  for (int e = 0; e < NX; ++e) part[e] = 0.0f;
  for (int d = lid; d < D && live; d += LWG) {
    const float v = xr[d] * inv * g[d];
    xn[(long)t * D + d] = v;
    for (int e = 0; e < NX; ++e) part[e] += gate[e * D + d] * v;
  }
  float logit[NX];
  for (int e = 0; e < NX; ++e) logit[e] = GROUP_SUM(part[e], red);
  if (!live) return;  // after the last barrier
#if LWG > 1
  if (lid != 0) return;
#endif
  float score[NX];
  if (mode == 2) {
    for (int e = 0; e < NX; ++e) score[e] = logit[e];
  } else {
    float m = logit[0];
    for (int e = 1; e < NX; ++e) m = fmax(m, logit[e]);
    float s = 0.0f;
    for (int e = 0; e < NX; ++e) s += (score[e] = exp(logit[e] - m));
    for (int e = 0; e < NX; ++e) score[e] /= s;
  }
  int pick[TOPK];
  float val[TOPK];
  uint taken = 0;  // NX <= 64: a bit per expert in two words
  uint taken_hi = 0;
  for (int k = 0; k < TOPK; ++k) {
    int best = -1;
    for (int e = 0; e < NX; ++e) {
      const bool used = e < 32 ? (taken >> e) & 1u : (taken_hi >> (e - 32)) & 1u;
      if (!used && (best < 0 || score[e] > score[best])) best = e;
    }
    if (best < 32) taken |= 1u << best; else taken_hi |= 1u << (best - 32);
    pick[k] = best;
    val[k] = score[best];
  }
  if (mode == 0) {
    float s = 0.0f;
    for (int k = 0; k < TOPK; ++k) s += val[k];
    for (int k = 0; k < TOPK; ++k) val[k] /= s;
  } else if (mode == 2) {
    const float m = val[0];  // the largest
    float s = 0.0f;
    for (int k = 0; k < TOPK; ++k) s += (val[k] = exp(val[k] - m));
    for (int k = 0; k < TOPK; ++k) val[k] /= s;
  }
  for (int k = 0; k < TOPK; ++k) {
    idx[t * TOPK + k] = pick[k];
    wts[t * TOPK + k] = val[k];
  }
}

__kernel void moe_decode_up(__global const float* xn, ulong xn_off, __global const int* idx, ulong idx_off,
                            __global const float* w1, ulong w1_off, __global const float* w3, ulong w3_off,
                            __global float* act, ulong act_off, long T_arg, long D_arg, long F_arg) {
  xn += xn_off; idx += idx_off; w1 += w1_off; w3 += w3_off; act += act_off;
  const int T = T_arg, D = D_arg, F = F_arg, row = GROUP_ID, lid = LID;
  __local float red[LWG];
  const bool live = row < T * TOPK * F;
  const int tk = live ? row / F : 0, f = row % F, t = tk / TOPK;
  const long wrow = ((long)idx[tk] * F + f) * D;
  const float h1 = GROUP_SUM(live ? part_dot(w1 + wrow, xn + (long)t * D, D, lid) : 0.0f, red);
#ifdef SWIGLU
  const float h3 = GROUP_SUM(live ? part_dot(w3 + wrow, xn + (long)t * D, D, lid) : 0.0f, red);
  const float a = silu_f(h1) * h3;
#else
  const float a = 0.5f * h1 * (1.0f + erf(h1 * 0.70710678118654752f));
#endif
  if (live && lid == 0) act[row] = a;
}

__kernel void moe_decode_down(__global const float* act, ulong act_off, __global const int* idx, ulong idx_off,
                              __global const float* wts, ulong wts_off, __global const float* w2, ulong w2_off,
                              __global const float* x, ulong x_off, __global const float* extra, ulong extra_off,
                              __global float* out, ulong out_off, long T_arg, long D_arg, long F_arg, float scale,
                              int has_extra) {
  act += act_off; idx += idx_off; wts += wts_off; w2 += w2_off; x += x_off; extra += extra_off; out += out_off;
  const int T = T_arg, D = D_arg, F = F_arg, row = GROUP_ID, lid = LID;
  __local float red[LWG];
  const bool live = row < T * D;
  const int t = live ? row / D : 0, d = row % D;
  float sum = 0.0f;
  for (int k = 0; k < TOPK; ++k) {
    const long wrow = ((long)idx[t * TOPK + k] * D + d) * F;
    const float y = GROUP_SUM(live ? part_dot(w2 + wrow, act + (long)(t * TOPK + k) * F, F, lid) : 0.0f, red);
    sum += wts[t * TOPK + k] * y;
  }
  if (has_extra && live) sum += extra[row];
  if (live && lid == 0) out[row] = x[row] + scale * sum;
}
