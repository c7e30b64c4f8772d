// fp16 storage: casts between f32 and f16, and adding an fp32 gradient into an fp16 one.
// Kernels (x, out: (n) elements, any offset):
//   f32_to_f16      out[i] = rte(x[i])                             x f32, out f16
//   f16_to_f32      out[i] = x[i] (exact)                          x f16, out f32
//   scale_acc_f16   out[i] = rte((acc ? out[i] : 0) + s * x[i])    x f32, out f16: the sum in
//                   fp32, rounded once (an fp16 parameter's gradient, ops::accumulate_grad)
// -D knob: VEC (1 or 8, default 1), elements per work-item; launch ceil(n / VEC) work-items.
// 8 on CPUs: vload_half8 / vstore_half8 let PoCL emit F16C conversions, where its scalar
// vload_half path was several times slower (phase1's fp16 training step: 8% slower than fp32
// with VEC 1, 1% with VEC 8). 1 on GPUs: with 8 the H200's fp16 training steps were up to 5%
// slower (tiny; production3B_full 3%), probably because vloadn / vstoren promise only the
// element's own alignment, so a warp's accesses are strided rather than coalesced. A last
// partial group goes element by element.
#ifndef VEC
#define VEC 1
#endif

__kernel void f32_to_f16(__global const float* x, ulong x_off, __global half* out, ulong out_off,
                         long n) {
  x += x_off; out += out_off;
  long j = get_global_id(0), i = j * VEC;
#if VEC == 8
  if (i + 8 <= n) {
    vstore_half8_rte(vload8(j, x), j, out);
    return;
  }
#endif
  for (long end = min(i + VEC, n); i < end; ++i) vstore_half_rte(x[i], i, out);
}

__kernel void f16_to_f32(__global const half* x, ulong x_off, __global float* out, ulong out_off,
                         long n) {
  x += x_off; out += out_off;
  long j = get_global_id(0), i = j * VEC;
#if VEC == 8
  if (i + 8 <= n) {
    vstore8(vload_half8(j, x), j, out);
    return;
  }
#endif
  for (long end = min(i + VEC, n); i < end; ++i) out[i] = vload_half(i, x);
}

__kernel void scale_acc_f16(__global const float* x, ulong x_off, __global half* out,
                            ulong out_off, long n, float s, int acc) {
  x += x_off; out += out_off;
  long j = get_global_id(0), i = j * VEC;
#if VEC == 8
  if (i + 8 <= n) {
    float8 v = s * vload8(j, x);
    vstore_half8_rte(acc ? vload_half8(j, out) + v : v, j, out);
    return;
  }
#endif
  for (long end = min(i + VEC, n); i < end; ++i)
    vstore_half_rte(acc ? vload_half(i, out) + s * x[i] : s * x[i], i, out);
}
