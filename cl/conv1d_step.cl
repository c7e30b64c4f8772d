// Causal depthwise conv1d for step-by-step decoding (the recurrent form of cl/conv1d.cl).
// The conv state holds the last W-1 inputs of each channel, oldest first:
//   state: (B, C, W-1)     x_t, y_t: (B, C)     w: (C, W)     bias: (C)
// Kernels:
//   conv1d_step        y_t[b, c] = bias[c] + sum_{k < W-1} w[c, k] * state[b, c, k] + w[c, W-1] * x_t[b, c],
//                      then the state shifts left by one and takes x_t
//   conv1d_state_of    state[b, c, k] = x[b, L - (W-1) + k, c] (0 where that index is < 0):
//                      the state a parallel forward over x (B, L, C) leaves
// Knobs: none (W is an argument).

__kernel void conv1d_step(__global const float* x, ulong x_off, __global const float* w, ulong w_off,
                          __global const float* bias, ulong bias_off, __global float* state,
                          ulong state_off, __global float* y, ulong y_off, long nb, long C, long W,
                          int has_bias) {
  x += x_off; w += w_off; bias += bias_off; state += state_off; y += y_off;
  const long gid = get_global_id(0);
  if (gid >= nb * C) return;
  const long c = gid % C;
  __global float* s = state + gid * (W - 1);
  const float xt = x[gid];
  float acc = has_bias ? bias[c] : 0.0f;
  for (long k = 0; k < W - 1; ++k) acc += w[c * W + k] * s[k];
  acc += w[c * W + W - 1] * xt;
  for (long k = 0; k + 1 < W - 1; ++k) s[k] = s[k + 1];
  if (W > 1) s[W - 2] = xt;
  y[gid] = acc;
}

__kernel void conv1d_state_of(__global const float* x, ulong x_off, __global float* state,
                              ulong state_off, long nb, long L, long C, long W) {
  x += x_off; state += state_off;
  const long gid = get_global_id(0);
  if (gid >= nb * C * (W - 1)) return;
  const long k = gid % (W - 1), c = (gid / (W - 1)) % C, b = gid / ((W - 1) * C);
  const long t = L - (W - 1) + k;
  state[gid] = t >= 0 ? x[(b * L + t) * C + c] : 0.0f;
}
