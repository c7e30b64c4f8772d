// Dropout with a counter-based mask (nothing stored: the backward regenerates it).
// Kernels:
//   dropout   out[i] = keep(i) ? x[i] * scale : 0     x, out: (n) f32
// keep(i): u = top 24 bits of splitmix64(seed + i) / 2^24 in [0, 1); keep when u >= p.
// The same (seed, i) always gives the same decision, on any device.

inline ulong splitmix64(ulong z) {
  z += 0x9E3779B97F4A7C15UL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
  return z ^ (z >> 31);
}

__kernel void dropout(__global const float* x, ulong x_off, __global float* out, ulong out_off,
                      long n, long seed, float p, float scale) {
  x += x_off; out += out_off;
  long i = get_global_id(0);
  if (i >= n) return;
  const float u = (float)(splitmix64((ulong)seed + (ulong)i) >> 40) * (1.0f / 16777216.0f);
  out[i] = u >= p ? x[i] * scale : 0.0f;
}
