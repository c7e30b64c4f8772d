// AdamW over flat parameter chunks (see include/magellano/optim/adamw.hpp), and the global
// gradient norm for clipping. Deterministic: fixed work-group sizes, fixed summation order.
// Kernels:
//   sumsq_partial  partial[k] = sum of g[i]^2 over group k's contiguous block, VEC-wide loads,
//                  counting only the elements i in [lo, hi) (ZeRO: this rank's share; [0, n)
//                  counts all, in the same order); g: (n) one gradient chunk, n, lo and hi
//                  multiples of VEC; partial: (G), G = number of groups launched
//   norm_final     stats[0] = sqrt(sum(partial[0..count))) * grad_scale, the norm of the
//                  scaled gradients; when max_norm > 0 also
//                  stats[1] = grad_scale * min(1, max_norm / (stats[0] + 1e-6))
//                  (torch.nn.utils.clip_grad_norm_'s coefficient, times the scale: the
//                  factor the step applies to the stored gradients); one work-group
//   adamw_step     torch.optim.AdamW's update of one chunk, in place, VEC elements per
//                  work-item (floatVEC loads and stores; n / VEC work-items):
//                  p, g, m, v: (n); elements [0, decay_end) are in the weight-decay group;
//                  stats: (2) from norm_final, read only when clip != 0 (else the gradients
//                  are read times grad_scale). n, decay_end and
//                  every offset must be multiples of VEC (the host rounds decay_end up: the
//                  pack's padding is zero and stays zero under decay)
//   adamw_step_half
//                  the same update with p and g stored as fp16 (m, v fp32): p and g are read
//                  with vload_half (exact), the arithmetic is the fp32 update above, and the
//                  new p is stored rounded to nearest even (vstore_half_rte), or with
//                  stochastic != 0 rounded stochastically (round_half_stochastic, random bits
//                  from hashing `seed` with the element's index). No fp32 master copy: p's
//                  precision is fp16's (see include/magellano/optim/adamw.hpp)
//   sumsq_partial_half, scale_half
//                  sumsq_partial for fp16 g; g <- g * s for fp16 g (gradient accumulation)
//   adamw8_step, adamw8_step_half (work-group mapping), adamw8_rows, adamw8_rows_half (rows)
//                  the same update with both moments stored as bitsandbytes' 8-bit blockwise
//                  dynamic quantization (include/magellano/optim/dynamic_map.hpp): one
//                  work-group of QBLOCK (256) work-items per block, one element each.
//                  p, g: (n) f32 (f16 for _half); mc, vc: (n) uchar codes; ma, va:
//                  (ceil(n / QBLOCK)) f32 absmax per block; code_m, code_v: (256) the signed
//                  and unsigned maps; mid_m, mid_v: (255) the fp32 midpoints between
//                  neighbouring codes. Per element: dequantize (code * absmax), the fp32 update
//                  of adamw_update, then per block the new absmax = max |m| (|v|) and the
//                  code of m / absmax (v / absmax) = the number of midpoints below it (the
//                  nearest code; an exact tie goes to the lower code), and for m bitsandbytes'
//                  sign fix (a code of the other sign moves one step towards m's sign). A block
//                  whose absmax is 0 stores the code of 0. Elements past n are not touched.
//                  The rows kernels (for CPUs) give the same bits with one work-item per block
//                  and no barriers: launch ceil(n / QBLOCK) work-items.
// -D knobs: LOCAL (default 256), the work-group size of sumsq_partial and norm_final;
//           VEC (default 8: 2, 4, 8 or 16), the vector width of the step kernels. On PoCL,
//           VEC 16 ran ~3x faster than one element per work-item (the scalar vload_half
//           path ~15x slower): wide explicit vectors let LLVM emit AVX2 loads and F16C
//           conversions, which PoCL's work-item-loop vectorizer did not.
//           QBLOCK (256, fixed): the quantization block of adamw8_step (bitsandbytes'
//           optimizer block size); the work-group size of its launches.
// Build adamw_step with -cl-fp32-correctly-rounded-divide-sqrt (as the host does) so sqrt and
// division round like CUDA's / the CPU's IEEE operations that torch uses.
#ifndef LOCAL
#define LOCAL 256
#endif
#ifndef VEC
#define VEC 8
#endif
#define QBLOCK 256
#define MG_CAT_(a, b) a##b
#define MG_CAT(a, b) MG_CAT_(a, b)
#define floatV MG_CAT(float, VEC)
#define vloadV MG_CAT(vload, VEC)
#define vstoreV MG_CAT(vstore, VEC)
#define vload_halfV MG_CAT(vload_half, VEC)
#define vstore_halfV_rte MG_CAT(MG_CAT(vstore_half, VEC), _rte)
#define intV MG_CAT(int, VEC)
#define uintV MG_CAT(uint, VEC)
#define convert_floatV MG_CAT(convert_float, VEC)

// The sum of a vector's lanes, in lane order.
inline float lane_sum(floatV a) {
  float t[VEC];
  vstoreV(a, 0, t);
  float s = 0.0f;
  for (int k = 0; k < VEC; ++k) s += t[k];
  return s;
}

// Group k sums the contiguous block of vectors [k * per, (k + 1) * per), its work-items
// striding by LOCAL vectors inside it: coalesced on GPUs and cache friendly on CPUs (a
// grid-wide stride ran ~10x slower on PoCL). n must be a multiple of VEC.
__kernel __attribute__((reqd_work_group_size(LOCAL, 1, 1)))
void sumsq_partial(__global const float* g, ulong g_off, __global float* partial,
                   ulong partial_off, long n, long lo, long hi) {
  g += g_off; partial += partial_off;
  __local float s[LOCAL];
  long groups = get_num_groups(0), nv = n / VEC;
  long per = (nv + groups - 1) / groups;
  long begin = get_group_id(0) * per, end = min(nv, begin + per);
  floatV acc = 0.0f;
  for (long j = begin + get_local_id(0); j < end; j += LOCAL) {
    if (j < lo / VEC || j >= hi / VEC) continue;
    floatV x = vloadV(j, g);
    acc += x * x;
  }
  float total = group_sum(s, lane_sum(acc), LOCAL);
  if (get_local_id(0) == 0) partial[get_group_id(0)] = total;
}

__kernel __attribute__((reqd_work_group_size(LOCAL, 1, 1)))
void sumsq_partial_half(__global const half* g, ulong g_off, __global float* partial,
                        ulong partial_off, long n, long lo, long hi) {
  g += g_off; partial += partial_off;
  __local float s[LOCAL];
  long groups = get_num_groups(0), nv = n / VEC;
  long per = (nv + groups - 1) / groups;
  long begin = get_group_id(0) * per, end = min(nv, begin + per);
  floatV acc = 0.0f;
  for (long j = begin + get_local_id(0); j < end; j += LOCAL) {
    if (j < lo / VEC || j >= hi / VEC) continue;
    floatV x = vload_halfV(j, g);
    acc += x * x;
  }
  float total = group_sum(s, lane_sum(acc), LOCAL);
  if (get_local_id(0) == 0) partial[get_group_id(0)] = total;
}

__kernel void scale_half(__global half* g, ulong g_off, long n, float s) {
  g += g_off;
  long i = get_global_id(0);
  if (i < n) vstore_half_rte(vload_half(i, g) * s, i, g);
}

__kernel __attribute__((reqd_work_group_size(LOCAL, 1, 1)))
void norm_final(__global const float* partial, ulong partial_off, __global float* stats,
                ulong stats_off, long count, float max_norm, float grad_scale) {
  partial += partial_off; stats += stats_off;
  __local float s[LOCAL];
  float v = 0.0f;
  for (long i = get_local_id(0); i < count; i += LOCAL) v += partial[i];
  float total = group_sum(s, v, LOCAL);
  if (get_local_id(0) == 0) {
    float norm = sqrt(total) * grad_scale;
    stats[0] = norm;
    if (max_norm > 0.0f) stats[1] = grad_scale * fmin(1.0f, max_norm / (norm + 1e-6f));
  }
}

// adamw_step and adamw_step_half, per element, with the step's scalars computed on the host
// (double, then rounded to float as torch's fp32 kernels round their scalar arguments):
//   g' = coef * g                                 coef = stats[1] when clip, else grad_scale
//   p  = p * decay                                decay = 1 - lr * wd (decay group only)
//   m  = b1 * m + omb1 * g'                       omb1 = 1 - b1
//   v  = b2 * v + omb2 * g'^2                     omb2 = 1 - b2
//   p  = p - step_size * (m / (sqrt(v) / bc2_sqrt + eps))
//                                                 step_size = lr / (1 - b1^t), bc2_sqrt = sqrt(1 - b2^t)
//
// adamw_update: one update of VEC elements, shared by both kernels (so fp32 and fp16 storage
// round identically); pv and gv as loaded (fp32 values), m and v updated in place, returns
// the new p.
inline floatV adamw_update(floatV pv, floatV gv, __global float* m, __global float* v, long j,
                           int in_decay, float decay, float b1, float omb1, float b2, float omb2,
                           float step_size, float bc2_sqrt, float eps, float coef) {
  floatV gi = gv * coef;
  floatV pi = in_decay ? pv * decay : pv;
  floatV mi = b1 * vloadV(j, m) + omb1 * gi;
  floatV vi = b2 * vloadV(j, v) + omb2 * (gi * gi);
  vstoreV(mi, j, m);
  vstoreV(vi, j, v);
  floatV denom = sqrt(vi) / bc2_sqrt + eps;
  return pi - step_size * (mi / denom);
}

// Work-item j updates elements [j * VEC, (j + 1) * VEC); n, decay_end, offsets: multiples of VEC.
__kernel void adamw_step(__global float* p, ulong p_off, __global const float* g, ulong g_off,
                         __global float* m, ulong m_off, __global float* v, ulong v_off,
                         __global const float* stats, ulong stats_off, long n, long decay_end,
                         float decay, float b1, float omb1, float b2, float omb2,
                         float step_size, float bc2_sqrt, float eps, int clip, float grad_scale) {
  p += p_off; g += g_off; m += m_off; v += v_off; stats += stats_off;
  long j = get_global_id(0);
  if (j * VEC < n) {
    float coef = clip ? stats[1] : grad_scale;
    floatV pn = adamw_update(vloadV(j, p), vloadV(j, g), m, v, j, j * VEC < decay_end, decay, b1,
                             omb1, b2, omb2, step_size, bc2_sqrt, eps, coef);
    vstoreV(pn, j, p);
  }
}

// A 32-bit integer hash (Wellons' lowbias32), lane by lane.
inline uintV mix32(uintV x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

// Stochastic rounding to fp16: each lane of x goes to one of its two neighbouring fp16 values,
// the one above |x| with probability (|x| - lower) / spacing, so the expected result is x
// (an update far below half an fp16 ulp still moves the parameter, on average). The spacing
// is 2^(e - 10) for |x| in [2^e, 2^(e+1)), e >= -14, and 2^-24 among subnormals; every step
// below is exact (power-of-two scalings, a floor, a subtraction of nearby values), and the
// comparison uses 24 random bits against a fraction that is a multiple of 2^-24, so the
// probabilities are exact. |x| >= 65504 (fp16's largest), Inf and NaN pass through (the store
// then rounds them as vstore_half_rte does). The result is an fp16 value: any rounding mode
// stores it unchanged. r: VEC random 32-bit integers.
inline floatV round_half_stochastic(floatV x, uintV r) {
  floatV a = fabs(x);
  intV e = max(ilogb(a), (intV)(-14));  // ilogb(0) is very negative: spacing 2^-24
  floatV q = ldexp(a, 10 - e);          // |x| in units of the spacing, in [0, 2048)
  floatV lower = floor(q);
  floatV u = convert_floatV(r >> 8) * 0x1p-24f;
  floatV k = select(lower, lower + 1.0f, isless(u, q - lower));
  floatV y = copysign(fmin(ldexp(k, e - 10), 65504.0f), x);
  return select(y, x, isgreaterequal(a, (floatV)65504.0f) | isnan(a));
}

// adamw_step with p, g: (n) fp16; stochastic != 0: the new p is rounded stochastically with
// the random bits mix32(index ^ mix32(seed ^ index_high)), index = base + the element's position
// in p, i.e. its position in the pack chunk (base: where this launch starts in the chunk, so a
// chunk updated in pages draws the same bits; the host varies seed with the step and chunk).
__kernel void adamw_step_half(__global half* p, ulong p_off, __global const half* g,
                              ulong g_off, __global float* m, ulong m_off, __global float* v,
                              ulong v_off, __global const float* stats, ulong stats_off, long n,
                              long decay_end, float decay, float b1, float omb1, float b2,
                              float omb2, float step_size, float bc2_sqrt, float eps, int clip,
                              float grad_scale, int stochastic, uint seed, long base) {
  p += p_off; g += g_off; m += m_off; v += v_off; stats += stats_off;
  long j = get_global_id(0);
  if (j * VEC < n) {
    float coef = clip ? stats[1] : grad_scale;
    floatV pn = adamw_update(vload_halfV(j, p), vload_halfV(j, g), m, v, j, j * VEC < decay_end,
                             decay, b1, omb1, b2, omb2, step_size, bc2_sqrt, eps, coef);
    if (stochastic) {
      ulong first = base + (ulong)j * VEC;
      uint lanes[VEC];
      for (int k = 0; k < VEC; ++k) lanes[k] = (uint)first + k;
      uintV index = vloadV(0, lanes);
      pn = round_half_stochastic(pn, mix32(index ^ mix32((uintV)(seed ^ (uint)(first >> 32)))));
    }
    vstore_halfV_rte(pn, j, p);
  }
}


// ---- 8-bit moments (adamw8_step, adamw8_step_half, adamw8_rows, adamw8_rows_half) ----

// The largest value of v over the work-group (QBLOCK work-items); exact in any order.
inline float group_max(__local float* s, float v) {
  const int l = get_local_id(0);
  s[l] = v;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int w = QBLOCK / 2; w > 0; w >>= 1) {
    if (l < w) s[l] = fmax(s[l], s[l + w]);
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  const float r = s[0];
  barrier(CLK_LOCAL_MEM_FENCE);
  return r;
}

// The number of the 255 increasing midpoints below x (0..255): the nearest code's index.
inline int nearest_code(__global const float* mid, float x) {
  int c = 0;
  for (int step = 128; step > 0; step >>= 1)
    if (c + step <= 255 && x > mid[c + step - 1]) c += step;
  return c;
}

// FP_CONTRACT OFF in these helpers: every product and sum rounds on its own, as the float64
// reference (tests/support/adamw8_reference.cpp) rounds them, so codes and p match it bit for bit.

// One element's update from its dequantized moments m0, v0: the new moments in *mo, *vo, the
// new p returned (adamw_update's arithmetic, one lane).
inline float adamw8_update(float pv, float gv, float m0, float v0, int in_decay, float decay,
                           float b1, float omb1, float b2, float omb2, float step_size,
                           float bc2_sqrt, float eps, float coef, float* mo, float* vo) {
#pragma OPENCL FP_CONTRACT OFF
  const float gi = gv * coef;
  const float pi = in_decay ? pv * decay : pv;
  const float mi = b1 * m0 + omb1 * gi;
  const float vi = b2 * v0 + omb2 * (gi * gi);
  *mo = mi;
  *vo = vi;
  const float denom = sqrt(vi) / bc2_sqrt + eps;
  return pi - step_size * (mi / denom);
}

// The codes of m and v given their block's new absmax am, av (bitsandbytes' sign fix for m).
inline uchar code_of_m(__global const float* code_m, __global const float* mid_m, float mi, float am) {
#pragma OPENCL FP_CONTRACT OFF
  int c = nearest_code(mid_m, am > 0.0f ? mi / am : 0.0f);
  if (signbit(code_m[c]) != signbit(mi)) c += mi > 0.0f ? 1 : -1;
  return (uchar)c;
}
inline uchar code_of_v(__global const float* mid_v, float vi, float av) {
#pragma OPENCL FP_CONTRACT OFF
  return (uchar)nearest_code(mid_v, av > 0.0f ? vi / av : 0.0f);
}

// Stores a new fp16 parameter: to nearest, or stochastically with adamw_step_half's bits for
// chunk element `index` (round_half_stochastic on a vector of which lane 0 is used).
inline void store_half_param(__global half* p, long i, float pn, int stochastic, uint seed, ulong index) {
  if (stochastic) {
    const uintV r = mix32((uintV)((uint)index) ^ mix32((uintV)(seed ^ (uint)(index >> 32))));
    vstore_half_rte(round_half_stochastic((floatV)pn, r).s0, i, p);
  } else {
    vstore_half_rte(pn, i, p);
  }
}

// The four kernels share one argument list; P_T is the parameter type, LOAD_P/STORE_P its access.
#define ADAMW8_ARGS(P_T)                                                                        \
  __global P_T* p, ulong p_off, __global const P_T* g, ulong g_off, __global uchar* mc,         \
      ulong mc_off, __global uchar* vc, ulong vc_off, __global float* ma, ulong ma_off,         \
      __global float* va, ulong va_off, __global const float* code_m, ulong code_m_off,         \
      __global const float* mid_m, ulong mid_m_off, __global const float* code_v,               \
      ulong code_v_off, __global const float* mid_v, ulong mid_v_off,                           \
      __global const float* stats, ulong stats_off, long n, long decay_end, float decay,        \
      float b1, float omb1, float b2, float omb2, float step_size, float bc2_sqrt, float eps,   \
      int clip, float grad_scale
#define ADAMW8_OFFSETS                                                                          \
  p += p_off; g += g_off; mc += mc_off; vc += vc_off; ma += ma_off; va += va_off;               \
  code_m += code_m_off; mid_m += mid_m_off; code_v += code_v_off; mid_v += mid_v_off;           \
  stats += stats_off;                                                                           \
  const float coef = clip ? stats[1] : grad_scale

// Work-group mapping (GPUs): group b updates block b, one element per work-item, absmax by a
// local-memory max. Launch ceil(n / QBLOCK) groups of QBLOCK.
#define ADAMW8_GROUP_BODY(LOAD_P, STORE_P)                                                      \
  __local float scratch[QBLOCK];                                                                \
  const long i = get_global_id(0), b = get_group_id(0);                                         \
  const int valid = i < n;                                                                      \
  float mi = 0.0f, vi = 0.0f, pn = 0.0f;                                                        \
  if (valid)                                                                                    \
    pn = adamw8_update(LOAD_P(i), LOAD_G(i), code_m[mc[i]] * ma[b], code_v[vc[i]] * va[b],      \
                       i < decay_end, decay, b1, omb1, b2, omb2, step_size, bc2_sqrt, eps,      \
                       coef, &mi, &vi);                                                         \
  const float am = group_max(scratch, fabs(mi)), av = group_max(scratch, fabs(vi));            \
  if (get_local_id(0) == 0) ma[b] = am, va[b] = av;                                             \
  if (valid) {                                                                                  \
    mc[i] = code_of_m(code_m, mid_m, mi, am);                                                   \
    vc[i] = code_of_v(mid_v, vi, av);                                                           \
    STORE_P(i, pn);                                                                             \
  }

// Row mapping (CPUs): work-item b updates block b alone, in two passes over its elements (no
// barriers: PoCL runs barrier-heavy groups ~20x slower). Launch ceil(n / QBLOCK) work-items.
#define ADAMW8_ROWS_BODY(LOAD_P, STORE_P)                                                       \
  const long b = get_global_id(0), begin = b * QBLOCK, end = min(n, begin + QBLOCK);            \
  if (begin >= n) return;                                                                       \
  float ms[QBLOCK], vs[QBLOCK];                                                                 \
  float am = 0.0f, av = 0.0f;                                                                   \
  const float ma0 = ma[b], va0 = va[b];                                                         \
  for (long i = begin; i < end; ++i) {                                                          \
    float mi, vi;                                                                               \
    const float pn = adamw8_update(LOAD_P(i), LOAD_G(i), code_m[mc[i]] * ma0,                   \
                                   code_v[vc[i]] * va0, i < decay_end, decay, b1, omb1, b2,     \
                                   omb2, step_size, bc2_sqrt, eps, coef, &mi, &vi);             \
    STORE_P(i, pn);                                                                             \
    ms[i - begin] = mi, vs[i - begin] = vi;                                                     \
    am = fmax(am, fabs(mi)), av = fmax(av, fabs(vi));                                           \
  }                                                                                             \
  ma[b] = am, va[b] = av;                                                                       \
  for (long i = begin; i < end; ++i) {                                                          \
    mc[i] = code_of_m(code_m, mid_m, ms[i - begin], am);                                        \
    vc[i] = code_of_v(mid_v, vs[i - begin], av);                                                \
  }

#define LOAD_F(i) p[i]
#define LOAD_G_F(i) g[i]
#define STORE_F(i, x) p[i] = (x)
#define LOAD_H(i) vload_half(i, p)
#define LOAD_G_H(i) vload_half(i, g)
#define STORE_H(i, x) store_half_param(p, i, x, stochastic, seed, (ulong)base + (ulong)(i))

#define LOAD_G LOAD_G_F
__kernel __attribute__((reqd_work_group_size(QBLOCK, 1, 1)))
void adamw8_step(ADAMW8_ARGS(float)) {
  ADAMW8_OFFSETS;
  ADAMW8_GROUP_BODY(LOAD_F, STORE_F)
}

__kernel void adamw8_rows(ADAMW8_ARGS(float)) {
  ADAMW8_OFFSETS;
  ADAMW8_ROWS_BODY(LOAD_F, STORE_F)
}
#undef LOAD_G

// The fp16-parameter kernels: p rounded as adamw_step_half rounds it (to nearest, or
// stochastically with the same random bits for chunk element base + i).
#define LOAD_G LOAD_G_H
__kernel __attribute__((reqd_work_group_size(QBLOCK, 1, 1)))
void adamw8_step_half(ADAMW8_ARGS(half), int stochastic, uint seed, long base) {
  ADAMW8_OFFSETS;
  ADAMW8_GROUP_BODY(LOAD_H, STORE_H)
}

__kernel void adamw8_rows_half(ADAMW8_ARGS(half), int stochastic, uint seed, long base) {
  ADAMW8_OFFSETS;
  ADAMW8_ROWS_BODY(LOAD_H, STORE_H)
}
#undef LOAD_G
