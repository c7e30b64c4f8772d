// Matrix-vector products for decoding a few rows (ops::decode_gemv): the weight is read once per
// launch, the RMSNorm of the input, the bias and the residual add are fused in.
//   x: (NB, K)   w: (O, K) row-major (PyTorch's Linear layout)   g: (K)   bias: (O)
//   res, out: (NB, O)
//   out[b, o] = [res[b, o] +] scale · (Σ_k w[o, k] · xn[b, k] [+ bias[o]])
//   xn = x · rsqrt(mean(x²) + eps) · g with the norm, else x; computed as rsqrt(..) · Σ w·(g·x),
//   the sum of squares taken in the same pass.
// With conv_mode > 0 (Mamba's in_proj, ops::decode_gemv_conv; O = 2E, cw: (E, W), cb: (E) when
// conv_mode == 2, conv: (NB, E, W-1) oldest first, updated in place, xc: (NB, E)): the finished
// output o < E, x = out[b, o], also takes the causal conv step of its channel:
//   xc[b, o] = silu(cb[o] + Σ_{k<W-1} cw[o, k] · conv[b, o, k] + cw[o, W-1] · x); conv shifts left, takes x.
// The channel's state belongs to the one work-item storing output o: no other reads it.
// With -DW_INT4=G the weight is int4 in groups of G (G % 32 == 0; ops/int4.hpp): w is the packed
// words (O, K / 8), ws the fp16 scales (O, K / G), and w[o, k] reads as W' = round_f16(code · scale).
// Kernels:
//   decode_gemv      gpu mapping: a work-group of LWG per output o; work-item i takes the 4-wide
//                    chunks (int4: the words) i, i + LWG, ... of k (coalesced), a local tree sums them.
//   decode_gemv_cpu  cpu mapping: a work-item per output walks k in float8 chunks (no barriers;
//                    the lanes fold in a fixed tree). int4: the work-group first stages its rows
//                    of x (times the norm weight) in local memory xl, KT columns (a multiple of G)
//                    at a time, each 32 columns de-interleaved (even, then odd); a work-item then
//                    takes 32 weights a step: four words as 16 bytes (int4_bytes16), the low and
//                    high nibbles looked up in the group's table (int4_lookup16).
// Knobs: -DNB=rows (1..16, compile-time: accumulators in registers), -DLWG=2^p (gpu), -DKPF=words
// (cpu int4: how far ahead of its reads a work-item prefetches its weight row, and the rows after
// it); xl and KT are the cpu int4 path's (a float and 1 elsewhere).
// Deterministic: fixed summation order per mapping.
#ifndef NB
#define NB 1
#endif
#ifndef LWG
#define LWG 64
#endif
#ifndef KPF
#define KPF 512  // 2 KB: the best of 0.5 to 8 KB on PoCL (benchmarks/README.md, int4)
#endif
#ifdef W_INT4  // the argument types (macros: the launcher checks the declared names)
#define WEIGHT_T int
#define SCALE_T half
#else
#define WEIGHT_T float
#define SCALE_T float  // unused
#endif

// The causal conv step + SiLU of channel e of row b (conv_mode 1: no bias, 2: bias) taking x.
inline void conv_step(float x, int b, int e, int E, int W, int conv_mode, __global const float* cw,
                      __global const float* cb, __global float* conv, __global float* xc) {
  __global float* s = conv + ((long)b * E + e) * (W - 1);
  float acc = conv_mode == 2 ? cb[e] : 0.0f;
  for (int k = 0; k < W - 1; ++k) acc += cw[e * W + k] * s[k];
  acc += cw[e * W + W - 1] * x;
  for (int k = 0; k + 1 < W - 1; ++k) s[k] = s[k + 1];
  if (W > 1) s[W - 2] = x;
  xc[(long)b * E + e] = acc / (1.0f + exp(-acc));
}

// The finished sums of output o: the norm's scale, bias, scale and residual; writes out[:, o]
// (and the conv step of channel o when conv_mode > 0 and o < O / 2).
inline void gemv_store(const float* acc, const float* ss, int o, int K, int O, float eps, float scale, int has_norm,
                       int has_bias, int has_res, __global const float* bias, __global const float* res,
                       __global float* out, int conv_mode, int W, __global const float* cw,
                       __global const float* cb, __global float* conv, __global float* xc) {
  for (int b = 0; b < NB; ++b) {
    float v = acc[b];
    if (has_norm) v *= rsqrt(ss[b] / (float)K + eps);
    if (has_bias) v += bias[o];
    v *= scale;
    if (has_res) v += res[(long)b * O + o];
    out[(long)b * O + o] = v;
    if (conv_mode > 0 && o < O / 2) conv_step(v, b, o, O / 2, W, conv_mode, cw, cb, conv, xc);
  }
}

__kernel void decode_gemv(__global const float* x, ulong x_off, __global const WEIGHT_T* w, ulong w_off,
                          __global const SCALE_T* ws, ulong ws_off,
                          __global const float* g, ulong g_off, __global const float* bias, ulong bias_off,
                          __global const float* res, ulong res_off, __global float* out, ulong out_off,
                          __global const float* cw, ulong cw_off, __global const float* cb, ulong cb_off,
                          __global float* conv, ulong conv_off, __global float* xc, ulong xc_off,
                          long K_arg, long O_arg, float eps, float scale, int has_norm, int has_bias,
                          int has_res, int conv_mode, long W_arg, __local float* xl, long KT_arg) {
  x += x_off; w += w_off; ws += ws_off; g += g_off; bias += bias_off; res += res_off; out += out_off;
  cw += cw_off; cb += cb_off; conv += conv_off; xc += xc_off;
  const int W = W_arg;
  const int K = K_arg, O = O_arg;  // fit: checked by the host
  const int o = get_group_id(0), lid = get_local_id(0);
  float acc[NB], ss[NB];
  for (int b = 0; b < NB; ++b) acc[b] = ss[b] = 0.0f;
  if (o < O) {
#ifdef W_INT4
    __global const uint* wr = (__global const uint*)w + (long)o * (K / 8);
    __global const half* sr = ws + (long)o * (K / W_INT4);
    const uint8 shifts = (uint8)(0, 4, 8, 12, 16, 20, 24, 28);
    for (int c = lid; c < K / 8; c += LWG) {
      const int8 codes = convert_int8(((uint8)(wr[c]) >> shifts) & (uint8)(15u)) - (int8)(8);
      const float8 wv = round_f16_8(convert_float8(codes) * vload_half(c / (W_INT4 / 8), sr));
      const float8 gv = has_norm ? vload8(c, g) : (float8)1.0f;
      for (int b = 0; b < NB; ++b) {
        const float8 xv = vload8(c, x + b * K);
        acc[b] += dot(wv.lo, gv.lo * xv.lo) + dot(wv.hi, gv.hi * xv.hi);
        ss[b] += dot(xv.lo, xv.lo) + dot(xv.hi, xv.hi);
      }
    }
#else
    __global const float* wr = w + (long)o * K;
    const int K4 = K / 4;
    for (int c = lid; c < K4; c += LWG) {
      const float4 wv = vload4(c, wr), gv = has_norm ? vload4(c, g) : (float4)1.0f;
      for (int b = 0; b < NB; ++b) {
        const float4 xv = vload4(c, x + b * K);
        acc[b] += dot(wv, gv * xv);
        ss[b] += dot(xv, xv);
      }
    }
    for (int k = 4 * K4 + lid; k < K; k += LWG) {
      const float wv = wr[k], gv = has_norm ? g[k] : 1.0f;
      for (int b = 0; b < NB; ++b) {
        const float xv = x[b * K + k];
        acc[b] += wv * (gv * xv);
        ss[b] += xv * xv;
      }
    }
#endif
  }
  __local float red[2 * NB * LWG];
  for (int b = 0; b < NB; ++b) {
    red[b * LWG + lid] = acc[b];
    red[(NB + b) * LWG + lid] = ss[b];
  }
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int span = LWG / 2; span > 0; span /= 2) {
    if (lid < span)
      for (int r = 0; r < 2 * NB; ++r) red[r * LWG + lid] += red[r * LWG + lid + span];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (lid == 0 && o < O) {
    for (int b = 0; b < NB; ++b) {
      acc[b] = red[b * LWG];
      ss[b] = red[(NB + b) * LWG];
    }
    gemv_store(acc, ss, o, K, O, eps, scale, has_norm, has_bias, has_res, bias, res, out, conv_mode, W, cw, cb, conv,
               xc);
  }
}

__kernel void decode_gemv_cpu(__global const float* x, ulong x_off, __global const WEIGHT_T* w, ulong w_off,
                              __global const SCALE_T* ws, ulong ws_off,
                              __global const float* g, ulong g_off, __global const float* bias, ulong bias_off,
                              __global const float* res, ulong res_off, __global float* out, ulong out_off,
                              __global const float* cw, ulong cw_off, __global const float* cb, ulong cb_off,
                              __global float* conv, ulong conv_off, __global float* xc, ulong xc_off,
                              long K_arg, long O_arg, float eps, float scale, int has_norm, int has_bias,
                              int has_res, int conv_mode, long W_arg, __local float* xl, long KT_arg) {
  x += x_off; w += w_off; ws += ws_off; g += g_off; bias += bias_off; res += res_off; out += out_off;
  cw += cw_off; cb += cb_off; conv += conv_off; xc += xc_off;
  const int W = W_arg;
  const int K = K_arg, O = O_arg;  // fit: checked by the host
  const int o = get_global_id(0);
  float acc[NB], ss[NB];
#ifdef W_INT4
  // The group's (norm-weighted) x, a tile of KT columns (a multiple of G) at a time, in local memory
  // with each 32 columns de-interleaved (the 16 even ones, then the 16 odd ones): the order in which
  // int4_bytes16 yields the weights. Sums of squares by work-item 0. No return before the barriers.
  const int lid = get_local_id(0), lsz = get_local_size(0), KT = KT_arg;
  __local float ssl[NB];
  if (lid == 0 && has_norm)
    for (int b = 0; b < NB; ++b) {
      float16 s16 = (float16)0.0f;
      for (int c = 0; c < K / 16; ++c) s16 = fma(vload16(c, x + b * K), vload16(c, x + b * K), s16);
      ssl[b] = hsum16(s16);
    }
  __global const uint* wr = (__global const uint*)w + (long)min(o, O - 1) * (K / 8);
  __global const half* sr = ws + (long)min(o, O - 1) * (K / W_INT4);
  float16 a16[NB];
  for (int b = 0; b < NB; ++b) a16[b] = (float16)0.0f;
  for (int k0 = 0; k0 < K; k0 += KT) {
    const int chunks = min(KT, K - k0) / 32;
    barrier(CLK_LOCAL_MEM_FENCE);  // the previous tile is read
    for (int i = lid; i < NB * chunks; i += lsz) {
      const int b = i / chunks, c = i % chunks;
      const float16 lo = vload16(0, x + b * K + k0 + 32 * c), hi = vload16(0, x + b * K + k0 + 32 * c + 16);
      const float16 glo = has_norm ? vload16(0, g + k0 + 32 * c) : (float16)1.0f;
      const float16 ghi = has_norm ? vload16(0, g + k0 + 32 * c + 16) : (float16)1.0f;
      const float16 even = (float16)(lo.even, hi.even) * (float16)(glo.even, ghi.even);
      const float16 odd = (float16)(lo.odd, hi.odd) * (float16)(glo.odd, ghi.odd);
      vstore16(even, 0, xl + b * KT + 32 * c);
      vstore16(odd, 0, xl + b * KT + 32 * c + 16);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    // The tile's sums in registers, even and odd columns in two chains (a16 lives across the
    // barriers, so PoCL keeps it in memory).
    float16 ae[NB], ao[NB];
    for (int b = 0; b < NB; ++b) ae[b] = ao[b] = (float16)0.0f;
    for (int q = k0 / W_INT4; q < k0 / W_INT4 + chunks * 32 / W_INT4; ++q) {
      const float16 s = int4_scale16(sr, q);
      const float16 table = int4_table16(s);
      for (int c = q * (W_INT4 / 32); c < (q + 1) * (W_INT4 / 32); ++c) {
        prefetch_line(wr + 4 * c + KPF);  // the weight stream, KPF words ahead
        const uint16 bytes = int4_bytes16(vload4(c, wr));
        const float16 we = int4_lookup16(table, s, bytes), wo = int4_lookup16(table, s, bytes >> 4);
        for (int b = 0; b < NB; ++b) {
          __local const float* xb = xl + b * KT + 32 * c - k0;
          ae[b] = fma(we, vload16(0, xb), ae[b]);
          ao[b] = fma(wo, vload16(1, xb), ao[b]);
        }
      }
    }
    for (int b = 0; b < NB; ++b) a16[b] += ae[b] + ao[b];
  }
  if (o >= O) return;  // after the last barrier
  for (int b = 0; b < NB; ++b) acc[b] = hsum16(a16[b]), ss[b] = has_norm ? ssl[b] : 0.0f;  // K % 32 == 0: no tail
#else
  if (o >= O) return;
  __global const float* wr = w + (long)o * K;
  float8 a8[NB], s8[NB];
  for (int b = 0; b < NB; ++b) a8[b] = s8[b] = (float8)0.0f;
  const int K8 = K / 8;
  for (int c = 0; c < K8; ++c) {
    const float8 wv = vload8(c, wr), gv = has_norm ? vload8(c, g) : (float8)1.0f;
    for (int b = 0; b < NB; ++b) {
      const float8 xv = vload8(c, x + b * K);
      a8[b] = fma(wv, gv * xv, a8[b]);
      s8[b] = fma(xv, xv, s8[b]);
    }
  }
  for (int b = 0; b < NB; ++b) {
    const float4 a4 = a8[b].lo + a8[b].hi, s4 = s8[b].lo + s8[b].hi;
    acc[b] = (a4.x + a4.y) + (a4.z + a4.w);
    ss[b] = (s4.x + s4.y) + (s4.z + s4.w);
    for (int k = 8 * K8; k < K; ++k) {
      const float xv = x[b * K + k];
      acc[b] += wr[k] * ((has_norm ? g[k] : 1.0f) * xv);
      ss[b] += xv * xv;
    }
  }
#endif
  gemv_store(acc, ss, o, K, O, eps, scale, has_norm, has_bias, has_res, bias, res, out, conv_mode, W, cw, cb, conv,
               xc);
}
