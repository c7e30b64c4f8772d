// Rotary position embedding, NeoX pairing (include/magellano/ops/rope.hpp):
//   x, y: (rows = B·L·NH, 2·npairs) row-major; row r is position start + (r / NH) % L
//   turns: (2, npairs): turns per position of each pair i (inv_freq_i / 2π, computed in double on
//          the host), split as hi (row 0) + lo (row 1)
// Kernels:
//   rope     a work-item per (row, VEC consecutive pairs): y = the rotation of x by the angle, or by
//            minus it (`inverse`: the backward); acc: add to y.
//   rope_at  the same forward rotation with each sequence's first position read from a buffer.
// The angle in turns is pos · (hi + lo): pos · hi as an exact float pair (a + e, e by fma), whole
// turns of a dropped exactly (a - floor(a)), then e + pos · lo added and the result reduced to
// [-1/2, 1/2]; sinpi / cospi of twice that. The only roundings are ~2^-25 turns in the sums and
// the functions' own few ulp, at any pos < 2^24 (pos is exact in a float).
// Knob: VEC (divides npairs).
#ifndef VEC
#define VEC 1
#endif

#if VEC == 1
typedef float vf;
#define VLOAD(p) (*(p))
#define VSTORE(v, p) (*(p) = (v))
#elif VEC == 2
typedef float2 vf;
#define VLOAD(p) vload2(0, p)
#define VSTORE(v, p) vstore2(v, 0, p)
#elif VEC == 4
typedef float4 vf;
#define VLOAD(p) vload4(0, p)
#define VSTORE(v, p) vstore4(v, 0, p)
#elif VEC == 8
typedef float8 vf;
#define VLOAD(p) vload8(0, p)
#define VSTORE(v, p) vstore8(v, 0, p)
#elif VEC == 16
typedef float16 vf;
#define VLOAD(p) vload16(0, p)
#define VSTORE(v, p) vstore16(v, 0, p)
#endif

// The rotation of row `row` (VEC pairs from i0) at position pos, into y (added with acc).
void rotate(__global const float* xr, __global const float* turns, __global float* yr, long i0, long npairs, float pos,
            int inverse, int acc) {
  const vf hi = VLOAD(turns + i0), lo = VLOAD(turns + npairs + i0);
  const vf a = (vf)pos * hi;
  const vf e = fma((vf)pos, hi, -a);           // pos · hi = a + e exactly
  vf r = (a - floor(a)) + (e + (vf)pos * lo);  // the angle in turns, whole turns dropped
  r -= rint(r);                                // in [-1/2, 1/2]
  const vf c = cospi(2.0f * r);
  const vf s = inverse ? -sinpi(2.0f * r) : sinpi(2.0f * r);
  const vf x1 = VLOAD(xr + i0), x2 = VLOAD(xr + npairs + i0);
  const vf y1 = x1 * c - x2 * s, y2 = x2 * c + x1 * s;
  VSTORE(acc ? VLOAD(yr + i0) + y1 : y1, yr + i0);
  VSTORE(acc ? VLOAD(yr + npairs + i0) + y2 : y2, yr + npairs + i0);
}

__kernel void rope(__global const float* x, ulong x_off, __global const float* turns, ulong turns_off,
                   __global float* y, ulong y_off, long rows, long L, long NH, long npairs, long start,
                   int inverse, int acc) {
  x += x_off; turns += turns_off; y += y_off;
  const long nv = npairs / VEC;
  const long gid = get_global_id(0);
  if (gid >= rows * nv) return;
  const long i0 = (gid % nv) * VEC, row = gid / nv;
  rotate(x + row * 2 * npairs, turns, y + row * 2 * npairs, i0, npairs, (float)(start + (row / NH) % L), inverse, acc);
}

// rope_at: row r of sequence b = r / (L·NH) at position first[b] + (r / NH) % L (each sequence of
// a decoding batch at its own position; a negative first, an ended row, counts as 0).
__kernel void rope_at(__global const float* x, ulong x_off, __global const int* first, ulong first_off,
                      __global const float* turns, ulong turns_off, __global float* y, ulong y_off, long rows, long L,
                      long NH, long npairs) {
  x += x_off; first += first_off; turns += turns_off; y += y_off;
  const long nv = npairs / VEC;
  const long gid = get_global_id(0);
  if (gid >= rows * nv) return;
  const long i0 = (gid % nv) * VEC, row = gid / nv;
  const long pos = max(first[row / (L * NH)], 0) + (row / NH) % L;
  rotate(x + row * 2 * npairs, turns, y + row * 2 * npairs, i0, npairs, (float)pos, 0, 0);
}

// rope_2d: GLM's two position ids (include/magellano/ops/rope.hpp). x, y: (rows = B·L·NH·2,
// 2·npairs): each head's first half (group 0) is rotated by the position id and its second half
// (group 1) by the block id, each half with NeoX pairing of its own (turns for d/2 wide halves).
// Row r: group g = r % 2, token = r / (2·NH), b = token / L, t = token % L.
//   mode 1: ids (t + max(ids[b], 0), 0)       ids: (B) first positions
//   mode 2: ids (ids[2·token], ids[2·token + 1])   ids: (B·L, 2)
__kernel void rope_2d(__global const float* x, ulong x_off, __global const int* ids, ulong ids_off,
                      __global const float* turns, ulong turns_off, __global float* y, ulong y_off, long rows, long L,
                      long NH, long npairs, int mode, int inverse, int acc) {
  x += x_off; ids += ids_off; turns += turns_off; y += y_off;
  const long nv = npairs / VEC;
  const long gid = get_global_id(0);
  if (gid >= rows * nv) return;
  const long i0 = (gid % nv) * VEC, row = gid / nv;
  const long g = row % 2, token = row / (2 * NH);
  long pos;
  if (mode == 1) pos = g ? 0 : max(ids[token / L], 0) + token % L;
  else pos = ids[2 * token + g];
  rotate(x + row * 2 * npairs, turns, y + row * 2 * npairs, i0, npairs, (float)pos, inverse, acc);
}
