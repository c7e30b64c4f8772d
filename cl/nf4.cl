// NF4 double quantization (bitsandbytes' layout and rounding), equal bit for bit to the host
// reference in src/quant/nf4_reference.cpp. Layout and rules: include/magellano/ops/nf4.hpp.
// Kernels:
//   nf4_quantize_blocks  x (n) f32 -> packed (ceil(n/2)) u8, absmax (ceil(n/64)) f32
//                        one work-item per block of 64
//   nf4_nested_scale     absmax (nb) f32, offset -> nested (ceil(nb/256)) f32 = max |absmax-offset|
//                        one work-item per block of 256
//   nf4_nested_codes     absmax (nb), offset, nested, lut (65536) -> absmax_q (nb) u8
//                        one work-item per absmax value
//   nf4_dequantize       packed, absmax_q, nested, offset, map (256), code (16) -> out (n) f32
//                        one work-item per 16 outputs
//   nf4_dequantize_f16   the same, stored as half (round to nearest even); one per 2 outputs
//   nf4_error_blocks     x, the NF4 weight -> per-block error sums (nb, 3) (error statistics)
//   nf4_linear_small     (with -DNF4_M=M) fused dequantize + x·Wᵀ for M <= 8 rows of x
// Build options: only NF4_M (nf4_linear_small). Contraction is off: a * b + c must round twice, as on the host.
#pragma OPENCL FP_CONTRACT OFF

#define NF4_BLOCK 64
#define NESTED_BLOCK 256

// div_rn (a / b correctly rounded): cl/common.cl.

// Number of the 15 fp32 midpoints strictly below s (torch.bucketize): the NF4 code of s.
inline uchar nf4_code_of(float s, const float* mid) {
  uchar c = 0;
  for (int k = 0; k < 15; ++k) c += mid[k] < s ? 1 : 0;
  return c;
}

// tiny: fp32(1e-38), the clamp bitsandbytes applies to absmax (stored for a partial zero block).
__kernel void nf4_quantize_blocks(__global const float* x, ulong x_off,
                                  __global uchar* packed, ulong packed_off,
                                  __global float* absmax, ulong absmax_off,
                                  __global const float* code, ulong code_off,
                                  long n, float tiny) {
  x += x_off; packed += packed_off; absmax += absmax_off; code += code_off;
  const long b = get_global_id(0);
  const long begin = b * NF4_BLOCK;
  if (begin >= n) return;
  const long end = min(n, begin + NF4_BLOCK);
  const int partial = end - begin < NF4_BLOCK;
  float mid[15];
  for (int k = 0; k < 15; ++k) mid[k] = (code[k] + code[k + 1]) / 2.0f;

  float m = 0.0f;
  if (!partial) {
    for (int i = 0; i < NF4_BLOCK / 4; ++i) {
      const float4 a = fabs(vload4(i, x + begin));
      m = fmax(m, fmax(fmax(a.x, a.y), fmax(a.z, a.w)));
    }
  } else {
    for (long i = begin; i < end; ++i) m = fmax(m, fabs(x[i]));
  }
  absmax[b] = (partial && m == 0.0f) ? tiny : m;
  const uchar zero_code = nf4_code_of(0.0f, mid);
  if (m == 0.0f) {  // every scaled value is 0 (bitsandbytes: x * (1 / 1e-38))
    for (long i = begin; i < end; i += 2) packed[i / 2] = (uchar)(zero_code << 4 | zero_code);
    return;
  }
  if (!partial) {
    // Eight values at a time: code = number of midpoints below, counted with vector compares
    // (a true compare is -1), then the even elements to the high nibbles.
    const float inv = div_rn(1.0f, m);
    for (int j = 0; j < NF4_BLOCK / 8; ++j) {
      const float8 v = vload8(j, x + begin) * inv;
      int8 c = (int8)(0);
      for (int k = 0; k < 15; ++k) c -= v > (float8)(mid[k]);
      vstore4(convert_uchar4(c.even << 4 | c.odd), j, packed + begin / 2);
    }
  } else {
    for (long i = begin; i < end; i += 2) {
      const uchar lo = i + 1 < n ? nf4_code_of(div_rn(x[i + 1], m), mid) : zero_code;
      packed[i / 2] = (uchar)(nf4_code_of(div_rn(x[i], m), mid) << 4 | lo);
    }
  }
}

__kernel void nf4_nested_scale(__global const float* absmax, ulong absmax_off,
                               __global float* nested, ulong nested_off, long nb, float offset) {
  absmax += absmax_off; nested += nested_off;
  const long c = get_global_id(0);
  const long begin = c * NESTED_BLOCK;
  if (begin >= nb) return;
  const long end = min(nb, begin + NESTED_BLOCK);
  float s = 0.0f;
  for (long i = begin; i < end; ++i) s = fmax(s, fabs(absmax[i] - offset));
  nested[c] = s;
}

// bitsandbytes' CPU quantize_blockwise: x = clamp(v * (1/s), -1, 1), table index
// trunc(((x + 1) * 0.5) * 65535 + 0.5) (every step rounded), code = lut[index].
__kernel void nf4_nested_codes(__global const float* absmax, ulong absmax_off,
                               __global const float* nested, ulong nested_off,
                               __global const uchar* lut, ulong lut_off,
                               __global uchar* absmax_q, ulong absmax_q_off, long nb,
                               float offset) {
  absmax += absmax_off; nested += nested_off; lut += lut_off; absmax_q += absmax_q_off;
  const long b = get_global_id(0);
  if (b >= nb) return;
  const float s = nested[b / NESTED_BLOCK];
  if (s == 0.0f) {
    absmax_q[b] = 0;
    return;
  }
  const float x = fmin(fmax((absmax[b] - offset) * div_rn(1.0f, s), -1.0f), 1.0f);
  float t = x + 1.0f;
  t = t * 0.5f;
  t = t * 65535.0f;
  t = t + 0.5f;
  absmax_q[b] = lut[(int)t];
}

// absmax' of block b: map[q] * scale + offset, two roundings.
inline float nf4_block_scale(__global const uchar* absmax_q, __global const float* nested,
                             __global const float* map, long b, float offset) {
  const float scaled = map[absmax_q[b]] * nested[b / NESTED_BLOCK];
  return scaled + offset;
}

// Sixteen outputs per work-item (8 packed bytes, always inside one 64-block); the tail of n
// that is not a multiple of 16 is handled element by element by the last work-item.
__kernel void nf4_dequantize(__global const uchar* packed, ulong packed_off,
                             __global const uchar* absmax_q, ulong absmax_q_off,
                             __global const float* nested, ulong nested_off,
                             __global const float* map, ulong map_off,
                             __global const float* code, ulong code_off,
                             __global float* out, ulong out_off, long n, float offset) {
  packed += packed_off; absmax_q += absmax_q_off; nested += nested_off; map += map_off;
  code += code_off; out += out_off;
  const long j = get_global_id(0);
  const long i = 16 * j;
  if (i >= n) return;
  const float a = nf4_block_scale(absmax_q, nested, map, i / NF4_BLOCK, offset);
  if (i + 16 <= n) {
    const uchar8 bytes = vload8(j, packed);
    const float16 v = (float16)(
        code[bytes.s0 >> 4], code[bytes.s0 & 15], code[bytes.s1 >> 4], code[bytes.s1 & 15],
        code[bytes.s2 >> 4], code[bytes.s2 & 15], code[bytes.s3 >> 4], code[bytes.s3 & 15],
        code[bytes.s4 >> 4], code[bytes.s4 & 15], code[bytes.s5 >> 4], code[bytes.s5 & 15],
        code[bytes.s6 >> 4], code[bytes.s6 & 15], code[bytes.s7 >> 4], code[bytes.s7 & 15]);
    vstore16(v * a, j, out);
  } else {
    for (long e = i; e < n; ++e) {
      const uchar byte = packed[e / 2];
      out[e] = code[(e & 1) ? (byte & 15) : (byte >> 4)] * a;
    }
  }
}

__kernel void nf4_dequantize_f16(__global const uchar* packed, ulong packed_off,
                                 __global const uchar* absmax_q, ulong absmax_q_off,
                                 __global const float* nested, ulong nested_off,
                                 __global const float* map, ulong map_off,
                                 __global const float* code, ulong code_off,
                                 __global half* out, ulong out_off, long n, float offset) {
  packed += packed_off; absmax_q += absmax_q_off; nested += nested_off; map += map_off;
  code += code_off; out += out_off;
  const long j = get_global_id(0);
  const long i = 2 * j;
  if (i >= n) return;
  const float a = nf4_block_scale(absmax_q, nested, map, i / NF4_BLOCK, offset);
  const uchar byte = packed[j];
  vstore_half_rte(code[byte >> 4] * a, i, out);
  if (i + 1 < n) vstore_half_rte(code[byte & 15] * a, i + 1, out);
}

// Quantization error of block b: err[3b] = sum |x - x'|, err[3b+1] = sum |x|,
// err[3b+2] = sum |x - x'| / (|x| + 1e-8), with x' dequantized on the fly (fp32 sums in order).
// One work-item per block of 64; err: (nb, 3).
__kernel void nf4_error_blocks(__global const float* x, ulong x_off,
                               __global const uchar* packed, ulong packed_off,
                               __global const uchar* absmax_q, ulong absmax_q_off,
                               __global const float* nested, ulong nested_off,
                               __global const float* map, ulong map_off,
                               __global const float* code, ulong code_off,
                               __global float* err, ulong err_off, long n, float offset) {
  x += x_off; packed += packed_off; absmax_q += absmax_q_off; nested += nested_off;
  map += map_off; code += code_off; err += err_off;
  const long b = get_global_id(0);
  const long begin = b * NF4_BLOCK;
  if (begin >= n) return;
  const long end = min(n, begin + NF4_BLOCK);
  const float a = nf4_block_scale(absmax_q, nested, map, b, offset);
  float e = 0.0f, mag = 0.0f, rel = 0.0f;
  if (end - begin == NF4_BLOCK) {  // eight lanes at a time, summed lane-wise, then across
    float8 e8 = (float8)(0.0f), m8 = (float8)(0.0f), r8 = (float8)(0.0f);
    for (int j = 0; j < NF4_BLOCK / 8; ++j) {
      const uchar4 bytes = vload4(j, packed + begin / 2);
      const float8 y = (float8)(code[bytes.s0 >> 4], code[bytes.s0 & 15], code[bytes.s1 >> 4],
                                code[bytes.s1 & 15], code[bytes.s2 >> 4], code[bytes.s2 & 15],
                                code[bytes.s3 >> 4], code[bytes.s3 & 15]) * a;
      const float8 xv = vload8(j, x + begin);
      const float8 d = fabs(xv - y);
      e8 += d;
      m8 += fabs(xv);
      r8 += d / (fabs(xv) + 1e-8f);
    }
    const float4 e4 = e8.lo + e8.hi, m4 = m8.lo + m8.hi, r4 = r8.lo + r8.hi;
    err[3 * b] = (e4.x + e4.y) + (e4.z + e4.w);
    err[3 * b + 1] = (m4.x + m4.y) + (m4.z + m4.w);
    err[3 * b + 2] = (r4.x + r4.y) + (r4.z + r4.w);
    return;
  }
  for (long i = begin; i < end; ++i) {
    const uchar byte = packed[i / 2];
    const float y = code[(i & 1) ? (byte & 15) : (byte >> 4)] * a;
    const float d = fabs(x[i] - y);
    e += d;
    mag += fabs(x[i]);
    rel += d / (fabs(x[i]) + 1e-8f);
  }
  err[3 * b] = e;
  err[3 * b + 1] = mag;
  err[3 * b + 2] = rel;
}

#ifdef NF4_M
// Fused dequantize + product for few rows (decoding): y[m, n] = sum_k x[m, k] * W'[n, k],
// m < NF4_M (a build option, 1..8). One work-group of L lanes (a power of two, given by the
// launch) per output column n; lane l takes the row's pieces of 64-blocks l, l + L, ... (a row
// of K elements starts anywhere in a block when K % 64 != 0), dequantizing on the fly, then the
// group sums (fixed tree: deterministic). Exact groups, no early return (PoCL).
//   x: (NF4_M, K)   W: NF4 (N, K)   y: (NF4_M, N)   scratch: L floats
__kernel void nf4_linear_small(__global const float* x, ulong x_off,
                               __global const uchar* packed, ulong packed_off,
                               __global const uchar* absmax_q, ulong absmax_q_off,
                               __global const float* nested, ulong nested_off,
                               __global const float* map, ulong map_off,
                               __global const float* code, ulong code_off,
                               __global float* y, ulong y_off, long N, long K, float offset,
                               __local float* scratch) {
  x += x_off; packed += packed_off; absmax_q += absmax_q_off; nested += nested_off;
  map += map_off; code += code_off; y += y_off;
  const long n = get_group_id(0);
  const int l = get_local_id(0), L = get_local_size(0);
  const long row_begin = n * K, row_end = row_begin + K;
  const long first_block = row_begin / NF4_BLOCK, last_block = (row_end - 1) / NF4_BLOCK;
  float acc[NF4_M];
  for (int m = 0; m < NF4_M; ++m) acc[m] = 0.0f;
  for (long b = first_block + l; b <= last_block; b += L) {
    const float a = nf4_block_scale(absmax_q, nested, map, b, offset);
    const long e0 = max(row_begin, b * NF4_BLOCK), e1 = min(row_end, (b + 1) * NF4_BLOCK);
    for (long e = e0; e < e1; ++e) {
      const uchar byte = packed[e / 2];
      const float w = code[(e & 1) ? (byte & 15) : (byte >> 4)] * a;
      const long k = e - row_begin;
      for (int m = 0; m < NF4_M; ++m) acc[m] += x[m * K + k] * w;
    }
  }
  for (int m = 0; m < NF4_M; ++m) {
    const float s = group_sum(scratch, acc[m], L);
    if (l == 0) y[m * N + n] = s;
  }
}
#endif
