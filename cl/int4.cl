// Group-wise int4 weights (compressed-tensors pack-quantized, fp16 scales): quantize, dequantize
// and the fused dequantize-and-multiply of few rows. Layout and rules: include/magellano/ops/int4.hpp;
// equal bit for bit to the host reference quant/int4_group.cpp (quantize, dequantize). The
// rounding and unpacking helpers (round_f16*, nibbles16, int4_table16, int4_weights16) are in
// cl/common.cl, shared with cl/decode_gemv.cl.
// Kernels (W: (N, K) = (out, in), G the group size, words = ceil(K / 8), groups = K / G):
//   int4_quantize_rows  w (N, K) f32 -> packed (N, words) i32, scales (N, groups) f16
//                       one work-item per row
//   int4_dequantize     packed, scales -> out (N, K) f32; one work-item per packed word
//   int4_linear_small   (with -DINT4_M=M and -DLANES=L) y (M, N) = x (M, K) · W'ᵀ, M <= 8:
//                       L = 1 (cpu mapping): a work-item per output walks its row, sixteen
//                       weights a step when G % 16 == 0, else word by word (float8 steps when
//                       G % 8 == 0, else element by element); L > 1 (gpu mapping, a power of
//                       two): a work-group of L lanes per output strides over the row's words
//                       (float8 or element steps), then a fixed-tree sum.
// Contraction is off: code * scale must round once (exact, then to fp16), a * b + c twice.
#pragma OPENCL FP_CONTRACT OFF

// One row: for each group, scale = round_f16(min(absmax / 7.5, 65504)) (2^-10 when 0), then
// code = rint(clamp(w / scale, -8, 7)) packed as code + 8, column c at bits 4 (c % 8) of word c / 8.
__kernel void int4_quantize_rows(__global const float* w, ulong w_off, __global int* packed,
                                 ulong packed_off, __global half* scales, ulong scales_off,
                                 long N, long K, long G) {
  w += w_off; packed += packed_off; scales += scales_off;
  const long r = get_global_id(0);
  if (r >= N) return;
  const long words = (K + 7) / 8, groups = K / G;
  w += r * K; packed += r * words; scales += r * groups;
  uint word = 0;
  for (long g = 0; g < groups; ++g) {
    float m = 0.0f;
    for (long i = g * G; i < (g + 1) * G; ++i) m = fmax(m, fabs(w[i]));
    float s = round_f16(fmin(div_rn(m, 7.5f), 65504.0f));
    if (s == 0.0f) s = 0x1p-10f;  // torch.finfo(float16).eps
    vstore_half_rte(s, g, scales);
    for (long c = g * G; c < (g + 1) * G; ++c) {
      const int code = (int)rint(clamp(div_rn(w[c], s), -8.0f, 7.0f));
      word |= (uint)(code + 8) << (4 * (c % 8));
      if (c % 8 == 7 || c == K - 1) {
        packed[c / 8] = (int)word;
        word = 0;
      }
    }
  }
}

__kernel void int4_dequantize(__global const int* packed, ulong packed_off,
                              __global const half* scales, ulong scales_off,
                              __global float* out, ulong out_off, long N, long K, long G) {
  packed += packed_off; scales += scales_off; out += out_off;
  const long j = get_global_id(0);
  const long words = (K + 7) / 8, groups = K / G;
  if (G % 16 == 0) {  // two words a work-item, both in one group: sixteen outputs at once
    if (j >= N * words / 2) return;
    const uint2 w = vload2(j, (__global const uint*)packed);
    const float s = vload_half((j * 16) / G, scales);  // rows are whole groups: flat index works
    vstore16(round_f16_16(convert_float16(convert_int16(nibbles16(w)) - 8) * s), j, out);
    return;
  }
  if (j >= N * words) return;
  const long r = j / words, c0 = (j % words) * 8, c1 = min(K, c0 + 8);
  const uint word = (uint)packed[j];
  for (long c = c0; c < c1; ++c) {
    const float s = vload_half(r * groups + c / G, scales);
    const int code = (int)((word >> (4 * (c - c0))) & 15u) - 8;
    out[r * K + c] = round_f16((float)code * s);
  }
}

#ifdef INT4_M
#ifndef LANES
#define LANES 1
#endif
// x: (INT4_M, K)   W: (N, K) packed (N, words), scales (N, groups)   y: (INT4_M, N)
// scratch: LANES floats (gpu mapping). Launch: N work-items (LANES 1, any work-group size), or
// N groups of LANES (exact groups, no early return: barriers).
__kernel void int4_linear_small(__global const float* x, ulong x_off,
                                __global const int* packed, ulong packed_off,
                                __global const half* scales, ulong scales_off,
                                __global float* y, ulong y_off, long N, long K, long G,
                                __local float* scratch) {
  x += x_off; packed += packed_off; scales += scales_off; y += y_off;
#if LANES == 1
  const long n = get_global_id(0);
  const int l = 0;
  if (n >= N) return;
#else
  const long n = get_group_id(0);
  const int l = get_local_id(0);
#endif
  const long words = (K + 7) / 8, groups = K / G;
  __global const uint* row = (__global const uint*)(packed + n * words);
  __global const half* srow = scales + n * groups;
  float16 acc[INT4_M];
  for (int m = 0; m < INT4_M; ++m) acc[m] = (float16)(0.0f);
  if (LANES == 1 && G % 16 == 0) {
    // cpu: sixteen weights (two words of one group) at a time, looked up in the group's table.
    for (long g = 0; g < groups; ++g) {
      const float16 s = int4_scale16(srow, g);
      const float16 table = int4_table16(s);
      for (long j = g * (G / 16); j < (g + 1) * (G / 16); ++j) {
        const float16 v = int4_weights16(table, s, vload2(j, row));
        for (int m = 0; m < INT4_M; ++m) acc[m] += vload16(j, x + m * K) * v;
      }
    }
  } else if (G % 8 == 0) {  // every word inside one group (and K % 8 == 0)
    const uint8 shifts = (uint8)(0, 4, 8, 12, 16, 20, 24, 28);
    for (long j = l; j < words; j += LANES) {
      const float s = vload_half((j * 8) / G, srow);
      const int8 codes = convert_int8(((uint8)(row[j]) >> shifts) & (uint8)(15u)) - (int8)(8);
      const float8 v = round_f16_8(convert_float8(codes) * s);
      for (int m = 0; m < INT4_M; ++m) acc[m].lo += vload8(j, x + m * K) * v;
    }
  } else {  // groups straddle words: element by element
    for (long j = l; j < words; j += LANES) {
      const uint word = row[j];
      for (long c = j * 8; c < min(K, j * 8 + 8); ++c) {
        const int code = (int)((word >> (4 * (c - j * 8))) & 15u) - 8;
        const float v = round_f16((float)code * vload_half(c / G, srow));
        for (int m = 0; m < INT4_M; ++m) acc[m].s0 += x[m * K + c] * v;
      }
    }
  }
  for (int m = 0; m < INT4_M; ++m) {
    float t = hsum16(acc[m]);
#if LANES > 1
    t = group_sum(scratch, t, LANES);
#endif
    if (l == 0) y[m * N + n] = t;
  }
}
#endif
