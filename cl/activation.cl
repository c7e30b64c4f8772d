// Pointwise activations, forward and backward. x, y, dy, dx: (n) contiguous.
// Kernels:
//   silu_fwd      y = x * sigmoid(x)
//   silu_bwd      dx (+)= dy * s * (1 + x * (1 - s)),   s = sigmoid(x)
//   softplus_fwd  y = log(1 + exp(x)), computed as max(x, 0) + log1p(exp(-|x|))
//   softplus_bwd  dx (+)= dy * sigmoid(x)
//   exp_fwd       y = exp(x)
//   exp_bwd       dx (+)= dy * y                          (uses the saved output)
//   gelu_fwd      y = x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2)))   (exact, erf form:
//                 PyTorch's nn.GELU() default, approximate='none')
//   gelu_bwd      dx (+)= dy * (Phi(x) + x * phi(x)),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
//                 (dx may alias dy: each element is read before it is written)
// -D knob: VEC (1 or 16, default 1), elements per work-item; launch ceil(n / VEC) work-items.
// 16 is the CPU mapping (ops/mapping.hpp): the same formulas on float16 vectors (the last,
// partial block padded), which PoCL turns into vector math, where its scalar log1p, log and erf
// cost 50-120 ns a value (softplus and gelu ran at 1% of the copy bandwidth). With VEC 16, Phi
// is 0.5 erfc(-x / sqrt 2) with Numerical Recipes' erfc (a Chebyshev fit, relative error
// < 1.2e-7 for every argument), since PoCL's erf is slow on vectors too. 1 is the GPU mapping.
#ifndef VEC
#define VEC 1
#endif

#if VEC == 16
// erfc(a) for a >= 0 (Numerical Recipes in C, 2nd ed., 6.2: erfcc).
inline floatv erfc_nonneg(floatv a) {
  const floatv t = 1.0f / (1.0f + 0.5f * a);
  const floatv p = -1.26551223f + t * (1.00002368f + t * (0.37409196f + t * (0.09678418f +
                   t * (-0.18628806f + t * (0.27886807f + t * (-1.13520398f + t * (1.48851587f +
                   t * (-0.82215223f + t * 0.17087277f))))))));
  return t * exp(-a * a + p);
}
// Phi(x) = 0.5 erfc(-x / sqrt 2): relative accuracy in both tails.
inline floatv gelu_cdf(floatv x) {
  const floatv half_tail = 0.5f * erfc_nonneg(fabs(x) * M_SQRT1_2_F);
  return select(half_tail, 1.0f - half_tail, x > 0.0f);
}
#else
inline floatv gelu_cdf(floatv x) { return 0.5f * (1.0f + erf(x * M_SQRT1_2_F)); }
#endif

inline floatv sigmoid_f(floatv x) { return 1.0f / (1.0f + exp(-x)); }

__kernel void silu_fwd(__global const float* x, ulong x_off, __global float* y, ulong y_off, long n) {
  x += x_off; y += y_off;
  const long i = get_global_id(0) * VEC;
  if (i >= n) return;
  const floatv v = LOADV(x, i, n);
  STOREV(v * sigmoid_f(v), y, i, n);
}

__kernel void silu_bwd(__global const float* x, ulong x_off, __global const float* dy, ulong dy_off,
                       __global float* dx, ulong dx_off, long n, int acc) {
  x += x_off; dy += dy_off; dx += dx_off;
  const long i = get_global_id(0) * VEC;
  if (i >= n) return;
  const floatv v = LOADV(x, i, n), s = sigmoid_f(v);
  ACC_STOREV(dx, i, n, LOADV(dy, i, n) * s * (1.0f + v * (1.0f - s)), acc);
}

__kernel void softplus_fwd(__global const float* x, ulong x_off, __global float* y, ulong y_off, long n) {
  x += x_off; y += y_off;
  const long i = get_global_id(0) * VEC;
  if (i >= n) return;
  const floatv v = LOADV(x, i, n);
  STOREV(fmax(v, 0.0f) + log1p(exp(-fabs(v))), y, i, n);
}

__kernel void softplus_bwd(__global const float* x, ulong x_off, __global const float* dy,
                           ulong dy_off, __global float* dx, ulong dx_off, long n, int acc) {
  x += x_off; dy += dy_off; dx += dx_off;
  const long i = get_global_id(0) * VEC;
  if (i >= n) return;
  ACC_STOREV(dx, i, n, LOADV(dy, i, n) * sigmoid_f(LOADV(x, i, n)), acc);
}

__kernel void exp_fwd(__global const float* x, ulong x_off, __global float* y, ulong y_off, long n) {
  x += x_off; y += y_off;
  const long i = get_global_id(0) * VEC;
  if (i >= n) return;
  STOREV(exp(LOADV(x, i, n)), y, i, n);
}

__kernel void exp_bwd(__global const float* y, ulong y_off, __global const float* dy, ulong dy_off,
                      __global float* dx, ulong dx_off, long n, int acc) {
  y += y_off; dy += dy_off; dx += dx_off;
  const long i = get_global_id(0) * VEC;
  if (i >= n) return;
  ACC_STOREV(dx, i, n, LOADV(dy, i, n) * LOADV(y, i, n), acc);
}

__kernel void gelu_fwd(__global const float* x, ulong x_off, __global float* y, ulong y_off, long n) {
  x += x_off; y += y_off;
  const long i = get_global_id(0) * VEC;
  if (i >= n) return;
  const floatv v = LOADV(x, i, n);
  STOREV(v * gelu_cdf(v), y, i, n);
}

__kernel void gelu_bwd(__global const float* x, ulong x_off, __global const float* dy, ulong dy_off,
                       __global float* dx, ulong dx_off, long n, int acc) {
  x += x_off; dy += dy_off; dx += dx_off;
  const long i = get_global_id(0) * VEC;
  if (i >= n) return;
  const floatv v = LOADV(x, i, n);
  const floatv pdf = 0.3989422804014327f * exp(-0.5f * v * v);
  ACC_STOREV(dx, i, n, LOADV(dy, i, n) * (gelu_cdf(v) + v * pdf), acc);
}
