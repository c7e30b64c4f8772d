// Prepended to every program. Conventions:
// - A tensor argument is a pair (__global T* x, ulong x_off); kernels start with x += x_off.
// - Sizes, counts, strides, offsets and indices are long; int is for 0/1 flags (acc, has_bias...)
//   and small values that are no size (ignore_index). The exception: the GPU GEMMs
//   (gemm_gpu.cl, gemm_skinny.cl) take int sizes, measured faster (see gemm_gpu.cl). ops::Launch checks every launch against
//   the signature: the argument count always, the types in tests.
// - `acc` flags: when acc != 0 a kernel adds to its output, else it overwrites it and never
//   reads it (outputs may hold NaN poison).
// - Half precision is storage only: vload_half / vstore_half, arithmetic in fp32.
#define ACC_STORE(out, i, v, acc) ((out)[i] = (acc) ? (out)[i] + (v) : (v))

// The sum of v over the work-group of n work-items (n a power of two) through s[0..n): a
// fixed-shape tree, so the same inputs give the same bits. Every work-item of the group must
// call it (it has barriers); all of them get the result.
inline float group_sum(__local float* s, float v, int n) {
  const int l = get_local_id(0);
  s[l] = v;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int w = n / 2; w > 0; w >>= 1) {
    if (l < w) s[l] += s[l + w];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  const float total = s[0];
  barrier(CLK_LOCAL_MEM_FENCE);  // s may be reused right after
  return total;
}

// The CPU mapping (ops/mapping.hpp) walks rows in float16 steps; these fold the 16 lanes in a
// fixed tree, so a row's result does not depend on anything but its values.
inline float hsum16(float16 v) {
  float8 a = v.lo + v.hi;
  float4 b = a.lo + a.hi;
  float2 c = b.lo + b.hi;
  return c.lo + c.hi;
}
inline float hmax16(float16 v) {
  float8 a = fmax(v.lo, v.hi);
  float4 b = fmax(a.lo, a.hi);
  float2 c = fmax(b.lo, b.hi);
  return fmax(c.lo, c.hi);
}
// The first n lanes (1 <= n) of a float16 from p, the rest 0; and the first n lanes stored to p:
// the last, partial block of a CPU-mapping kernel that walks 16 columns at a time.
inline float16 vload16_part(__global const float* p, long n) {
  if (n >= 16) return vload16(0, p);
  float a[16];
  for (int i = 0; i < 16; ++i) a[i] = i < n ? p[i] : 0.0f;
  return vload16(0, a);
}
inline void vstore16_part(float16 v, __global float* p, long n) {
  if (n >= 16) {
    vstore16(v, 0, p);
    return;
  }
  float a[16];
  vstore16(v, 0, a);
  for (int i = 0; i < n; ++i) p[i] = a[i];
}

// Pointwise kernels with a VEC knob of 1 or 16 (ops/mapping.hpp) are written once on `floatv`:
// a work-item handles elements [i, min(i + VEC, n)) of a buffer through LOADV / STOREV
// (VEC 16: float16, a partial last block padded with 0; otherwise one float).
#if defined(VEC) && VEC == 16
typedef float16 floatv;
#define LOADV(p, i, n) vload16_part((p) + (i), (n) - (i))
#define STOREV(v, p, i, n) vstore16_part((v), (p) + (i), (n) - (i))
#else
typedef float floatv;
#define LOADV(p, i, n) ((p)[i])
#define STOREV(v, p, i, n) ((p)[i] = (v))
#endif
// out[i ...] (+)= v (acc: add to out, else overwrite without reading)
#define ACC_STOREV(out, i, n, v, acc) STOREV((acc) ? LOADV(out, i, n) + (v) : (v), out, i, n)

// a / b rounded to the nearest fp32 (OpenCL's `/` may be off by a few ulp on some devices):
// steps the quotient towards the candidate whose exact residual a - q*b (one fma) is smallest.
inline float div_rn(float a, float b) {
  float q = a / b;
  for (int k = 0; k < 4; ++k) {
    const float up = nextafter(q, INFINITY), down = nextafter(q, -INFINITY);
    const float r = fabs(fma(-q, b, a));
    if (fabs(fma(-up, b, a)) < r) q = up;
    else if (fabs(fma(-down, b, a)) < r) q = down;
    else break;
  }
  return q;
}

#if defined(SHFL) && SHFL
// v of the work-item whose lane in its warp differs from this one's in the bits of `offset` (< 32):
// PTX shfl.sync (the host defines SHFL 1 on NVIDIA devices only). Every lane of the warp calls it.
inline float shfl_xor(float v, int offset) {
  float r;
  asm volatile("shfl.sync.bfly.b32 %0, %1, %2, 0x1f, 0xffffffff;" : "=f"(r) : "f"(v), "r"(offset));
  return r;
}
#endif

// A hint to bring the cache line at p closer, on CPUs (PoCL's OpenCL prefetch() compiles to
// nothing there; PoCL's pointers are flat, hence the cast; a prefetch never faults, so p may lie
// past the buffer); nothing on other devices.
inline void prefetch_line(__global const void* p) {
#if defined(__x86_64__) || defined(__aarch64__)
  __builtin_prefetch((const void*)(ulong)p);
#endif
}

// Group-wise int4 weights (ops/int4.hpp; cl/int4.cl and cl/decode_gemv.cl's int4 variant):
// W' = round_f16(code * scale), code = nibble - 8, column c in bits 4 (c % 8) of word c / 8.
// v rounded to the nearest fp16 (ties to even), as an fp32 value.
inline float round_f16(float v) {
  ushort h;
  vstore_half_rte(v, 0, (__private half*)&h);
  return vload_half(0, (__private const half*)&h);
}
inline float8 round_f16_8(float8 v) {
  ushort8 h;
  vstore_half8_rte(v, 0, (__private half*)&h);
  return vload_half8(0, (__private const half*)&h);
}
inline float16 round_f16_16(float16 v) {
  ushort16 h;
  vstore_half16_rte(v, 0, (__private half*)&h);
  return vload_half16(0, (__private const half*)&h);
}
// The 16 nibbles of two words (the first word's in lanes 0-7), each 0..15 (code + 8).
inline uint16 nibbles16(uint2 w) {
  const uint16 shifts = (uint16)(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28);
  return ((uint16)((uint8)(w.x), (uint8)(w.y)) >> shifts) & (uint16)(15u);
}
// Scale i (fp16) in all 16 lanes, converted as a vector: PoCL's scalar vload_half is a software
// routine, which took a fifth of the cpu int4 decode product's time.
inline float16 int4_scale16(__global const half* scales, long i) {
  const ushort16 h = (ushort16)(((__global const ushort*)scales)[i]);
  return vload_half16(0, (__private const half*)&h);
}
// The 16 values of a group with scale s (all lanes): W' for the nibbles 0..15.
inline float16 int4_table16(float16 s) {
  return round_f16_16((float16)(-8.0f, -7.0f, -6.0f, -5.0f, -4.0f, -3.0f, -2.0f, -1.0f, 0.0f, 1.0f, 2.0f, 3.0f, 4.0f,
                                5.0f, 6.0f, 7.0f) * s);
}
// W' of 16 nibbles (the low 4 bits of each lane of idx) from the group's table (int4_table16(s)):
// on CPUs with AVX-512 (PoCL compiles for the host) one 16-lane permute (vpermps, which reads only
// the low 4 bits of each index); elsewhere code * s rounded per weight. Equal bits either way; the
// lookup made the cpu mapping's one-row product about 2x faster on PoCL (OpenCL's `shuffle` is a
// scalar loop in PoCL 3.1).
inline float16 int4_lookup16(float16 table, float16 s, uint16 idx) {
#if defined(__AVX512F__)
  return __builtin_ia32_permvarsf512(table, as_int16(idx));
#else
  return round_f16_16(convert_float16(convert_int16(idx & (uint16)(15u)) - 8) * s);
#endif
}
// The 16 weights of two words of one group (the first word's columns in lanes 0-7).
inline float16 int4_weights16(float16 table, float16 s, uint2 w) { return int4_lookup16(table, s, nibbles16(w)); }
// The 16 bytes of four words of one group (32 columns), one byte a lane: its low nibble is the
// even column 2l, its high nibble (bytes >> 4) the odd column 2l + 1.
inline uint16 int4_bytes16(uint4 w) { return convert_uint16(as_uchar16(w)); }
