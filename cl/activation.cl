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

inline float sigmoid_f(float x) { return 1.0f / (1.0f + exp(-x)); }

__kernel void silu_fwd(__global const float* x, ulong x_off, __global float* y, ulong y_off, long n) {
  x += x_off; y += y_off;
  long i = get_global_id(0);
  if (i < n) y[i] = x[i] * sigmoid_f(x[i]);
}

__kernel void silu_bwd(__global const float* x, ulong x_off, __global const float* dy, ulong dy_off,
                       __global float* dx, ulong dx_off, long n, int acc) {
  x += x_off; dy += dy_off; dx += dx_off;
  long i = get_global_id(0);
  if (i < n) {
    float s = sigmoid_f(x[i]);
    ACC_STORE(dx, i, dy[i] * s * (1.0f + x[i] * (1.0f - s)), acc);
  }
}

__kernel void softplus_fwd(__global const float* x, ulong x_off, __global float* y, ulong y_off, long n) {
  x += x_off; y += y_off;
  long i = get_global_id(0);
  if (i < n) y[i] = fmax(x[i], 0.0f) + log1p(exp(-fabs(x[i])));
}

__kernel void softplus_bwd(__global const float* x, ulong x_off, __global const float* dy,
                           ulong dy_off, __global float* dx, ulong dx_off, long n, int acc) {
  x += x_off; dy += dy_off; dx += dx_off;
  long i = get_global_id(0);
  if (i < n) ACC_STORE(dx, i, dy[i] * sigmoid_f(x[i]), acc);
}

__kernel void exp_fwd(__global const float* x, ulong x_off, __global float* y, ulong y_off, long n) {
  x += x_off; y += y_off;
  long i = get_global_id(0);
  if (i < n) y[i] = exp(x[i]);
}

__kernel void exp_bwd(__global const float* y, ulong y_off, __global const float* dy, ulong dy_off,
                      __global float* dx, ulong dx_off, long n, int acc) {
  y += y_off; dy += dy_off; dx += dx_off;
  long i = get_global_id(0);
  if (i < n) ACC_STORE(dx, i, dy[i] * y[i], acc);
}

__kernel void gelu_fwd(__global const float* x, ulong x_off, __global float* y, ulong y_off, long n) {
  x += x_off; y += y_off;
  long i = get_global_id(0);
  if (i < n) y[i] = 0.5f * x[i] * (1.0f + erf(x[i] * M_SQRT1_2_F));
}

__kernel void gelu_bwd(__global const float* x, ulong x_off, __global const float* dy, ulong dy_off,
                       __global float* dx, ulong dx_off, long n, int acc) {
  x += x_off; dy += dy_off; dx += dx_off;
  long i = get_global_id(0);
  if (i < n) {
    float v = x[i];
    float cdf = 0.5f * (1.0f + erf(v * M_SQRT1_2_F));
    float pdf = 0.3989422804014327f * exp(-0.5f * v * v);
    ACC_STORE(dx, i, dy[i] * (cdf + v * pdf), acc);
  }
}
