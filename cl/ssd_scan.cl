// SSD (Mamba2's state-space dual scan): the per-step and per-chunk work around the chunk
// products of cl/ssd_chunk.cl, and the single decoding step. Read include/magellano/ops/ssd.hpp
// for the math. Layouts (row-major):
//   dt, ddt: (B, L, H) raw step sizes (before bias, softplus and clamp) and their gradient
//   dt_bias, A_log: (H); every head's A = -exp(A_log)
//   dtp, cs: (B, H, L) the processed step size, and the cumulative sum of dtp * A within each
//            chunk of `chunk` steps (it restarts at every chunk)
//   decay: (B, H, NC) exp(cs at the chunk's last step): how much a state fades across the chunk
//   states: (B, H, NC, N, P) per chunk (NC = ceil(L / chunk)); final: (B, H, P, N)
//   dB_h, dC_h: (B, L, H, N) per-head gradients of B and C; dB, dC: (B, L, G, N)
//   partials (rows B * NC, columns H): per (b, chunk) sums of dA_log and ddt_bias
// Kernels:
//   ssd_dt_cumsum      dtp, cs, decay                                  one work-item per (b, chunk, h)
//   ssd_state_pass     forward: states: each chunk's own state -> the state entering it, and
//                      final = the state after L; reverse: dstates: the gradient of each chunk's
//                      entering state through its outputs -> the gradient of its own state
//                                                          one work-item per (b, h, SVEC of n, p)
//   ssd_bwd_dt         ddt from ddt_d (gradient of dtp at fixed cs), dcs (gradient of cs) and
//                      dcs_end (B, H, NC) (gradient of each chunk's last cs through the state
//                      passing); the partials of dA_log and ddt_bias  one work-item per (b, chunk, h)
//   ssd_sum_heads      dB, dC (+)= sums of dB_h, dC_h over the heads of each group, in head order
//                                                          one work-item per (b, t, g, SVEC of n)
//   ssd_step           one decoding step: state (B, H, P, N) in place   one work-item per (b, h, p)
// Knobs: SVEC (contiguous elements per work-item of ssd_state_pass and ssd_sum_heads; divides N).
#ifndef SVEC
#define SVEC 1
#endif

// The step size the scan uses: softplus (torch's, linear above 20) of the raw value plus bias,
// clamped to [lo, hi] (mamba_ssm's dt_limit / Hugging Face's time_step_limit).
inline float ssd_dt(float raw, int softplus, float lo, float hi) {
  const float v = softplus && raw <= 20.0f ? log1p(exp(raw)) : raw;
  return fmin(fmax(v, lo), hi);
}

// d ssd_dt / d raw: zero where the clamp is active (mamba_ssm's convention), the softplus slope.
inline float ssd_dt_slope(float raw, int softplus, float lo, float hi) {
  const float v = softplus && raw <= 20.0f ? log1p(exp(raw)) : raw;
  if (v < lo || v > hi) return 0.0f;
  return softplus && raw <= 20.0f ? 1.0f / (1.0f + exp(-raw)) : 1.0f;
}

__kernel void ssd_dt_cumsum(__global const float* dt, ulong dt_off, __global const float* dt_bias, ulong dt_bias_off,
                            __global const float* A_log, ulong A_log_off, __global float* dtp, ulong dtp_off,
                            __global float* cs, ulong cs_off, __global float* decay, ulong decay_off,
                            long nb, long L, long H, long chunk, int softplus, float lo, float hi) {
  dt += dt_off; dt_bias += dt_bias_off; A_log += A_log_off; dtp += dtp_off; cs += cs_off; decay += decay_off;
  const long nc = (L + chunk - 1) / chunk, gid = get_global_id(0);
  if (gid >= nb * H * nc) return;
  const long h = gid % H, c = (gid / H) % nc, b = gid / (nc * H);  // heads share dt's cache lines
  const float A = -exp(A_log[h]), bias = dt_bias[h];
  const long t1 = min(L, (c + 1) * chunk);
  float sum = 0.0f;
  for (long t = c * chunk; t < t1; ++t) {
    const float v = ssd_dt(dt[(b * L + t) * H + h] + bias, softplus, lo, hi);
    const long i = (b * H + h) * L + t;
    dtp[i] = v;
    sum += v * A;
    cs[i] = sum;
  }
  decay[(b * H + h) * nc + c] = exp(sum);
}

// Forward (reverse = 0): S_in[0] = 0, S_in[c + 1] = decay[c] * S_in[c] + own[c]; in place,
//   states[c] <- S_in[c]; final (B, H, P, N) <- S_in[NC].
// Reverse: G[NC] = 0, G[c] = in[c] + decay[c] * G[c + 1], where in[c] is the gradient of S_in[c]
//   through chunk c's outputs; in place, states[c] <- G[c + 1], the gradient of chunk c's own state.
__kernel void ssd_state_pass(__global float* states, ulong states_off, __global const float* decay, ulong decay_off,
                             __global float* final_state, ulong final_state_off, long nb, long nc, long H,
                             long P, long N, int reverse) {
  states += states_off; decay += decay_off; final_state += final_state_off;
  const long np = N * P, gid = get_global_id(0);
  if (gid >= nb * H * (np / SVEC)) return;
  const long e0 = (gid % (np / SVEC)) * SVEC, bh = gid / (np / SVEC);
  __global float* s = states + bh * nc * np + e0;
  __global const float* a = decay + bh * nc;
  float carry[SVEC];
  for (int i = 0; i < SVEC; ++i) carry[i] = 0.0f;
  for (long k = 0; k < nc; ++k) {
    const long c = reverse ? nc - 1 - k : k;
    for (int i = 0; i < SVEC; ++i) {
      const float in = s[c * np + i];
      s[c * np + i] = carry[i];
      carry[i] = a[c] * carry[i] + in;
    }
  }
  if (!reverse)
    for (int i = 0; i < SVEC; ++i) {
      const long n = (e0 + i) / P, p = (e0 + i) % P;
      final_state[(bh * P + p) * N + n] = carry[i];
    }
}

// r = dL/d(dtp * A)[t] = sum of dcs over t' >= t within the chunk (plus dcs_end at its last step);
// ddtp = ddt_d + A * r; dA = sum dtp * r; then through the clamp and the softplus to the raw dt.
__kernel void ssd_bwd_dt(__global const float* dt, ulong dt_off, __global const float* dt_bias, ulong dt_bias_off,
                         __global const float* A_log, ulong A_log_off, __global const float* dtp, ulong dtp_off,
                         __global const float* ddt_d, ulong ddt_d_off, __global const float* dcs, ulong dcs_off,
                         __global const float* dcs_end, ulong dcs_end_off, __global float* ddt, ulong ddt_off,
                         __global float* dA_log_p, ulong dA_log_p_off, __global float* dbias_p, ulong dbias_p_off,
                         long nb, long L, long H, long chunk, int softplus, float lo, float hi, int acc) {
  dt += dt_off; dt_bias += dt_bias_off; A_log += A_log_off; dtp += dtp_off; ddt_d += ddt_d_off;
  dcs += dcs_off; dcs_end += dcs_end_off; ddt += ddt_off; dA_log_p += dA_log_p_off; dbias_p += dbias_p_off;
  const long nc = (L + chunk - 1) / chunk, gid = get_global_id(0);
  if (gid >= nb * H * nc) return;
  const long h = gid % H, c = (gid / H) % nc, b = gid / (nc * H);
  const float A = -exp(A_log[h]), bias = dt_bias[h];
  float r = dcs_end[(b * H + h) * nc + c], dA = 0.0f, dbias = 0.0f;
  for (long t = min(L, (c + 1) * chunk) - 1; t >= c * chunk; --t) {
    const long i = (b * H + h) * L + t, o = (b * L + t) * H + h;
    r += dcs[i];
    dA += dtp[i] * r;
    const float g = (ddt_d[i] + A * r) * ssd_dt_slope(dt[o] + bias, softplus, lo, hi);
    ACC_STORE(ddt, o, g, acc);
    dbias += g;
  }
  dA_log_p[(b * nc + c) * H + h] = dA * A;  // dA / dA_log = A
  dbias_p[(b * nc + c) * H + h] = dbias;
}

// One work-item per (b, t, g, SVEC of n).
__kernel void ssd_sum_heads(__global const float* dB_h, ulong dB_h_off, __global const float* dC_h, ulong dC_h_off,
                            __global float* dB, ulong dB_off, __global float* dC, ulong dC_off,
                            long nb, long L, long H, long G, long N, int acc_b, int acc_c) {
  dB_h += dB_h_off; dC_h += dC_h_off; dB += dB_off; dC += dC_off;
  const long gid = get_global_id(0);
  if (gid >= nb * L * G * (N / SVEC)) return;
  const long n0 = (gid % (N / SVEC)) * SVEC, g = (gid / (N / SVEC)) % G, bt = gid / ((N / SVEC) * G);
  const long hg = H / G, o = (bt * G + g) * N + n0;
  float sb[SVEC], sc[SVEC];
  for (int i = 0; i < SVEC; ++i) sb[i] = sc[i] = 0.0f;
  for (long h = g * hg; h < (g + 1) * hg; ++h)
    for (int i = 0; i < SVEC; ++i) {
      sb[i] += dB_h[(bt * H + h) * N + n0 + i];
      sc[i] += dC_h[(bt * H + h) * N + n0 + i];
    }
  for (int i = 0; i < SVEC; ++i) {
    ACC_STORE(dB, o + i, sb[i], acc_b);
    ACC_STORE(dC, o + i, sc[i], acc_c);
  }
}

// x_t: (B, H, P); dt_t: (B, H) raw; B_t, C_t: (B, G, N); D: (H) (has_D); state: (B, H, P, N)
// in place; y_t: (B, H, P).  S = exp(dt * A) * S + dt * x (outer) B;  y = S * C + D * x.
__kernel void ssd_step(__global const float* x, ulong x_off, __global const float* dt, ulong dt_off,
                       __global const float* dt_bias, ulong dt_bias_off, __global const float* A_log, ulong A_log_off,
                       __global const float* Bt, ulong Bt_off, __global const float* Ct, ulong Ct_off,
                       __global const float* D, ulong D_off, __global float* state, ulong state_off,
                       __global float* y, ulong y_off, long nb, long H, long G, long P, long N,
                       int has_D, int softplus, float lo, float hi) {
  x += x_off; dt += dt_off; dt_bias += dt_bias_off; A_log += A_log_off; Bt += Bt_off; Ct += Ct_off;
  D += D_off; state += state_off; y += y_off;
  const long gid = get_global_id(0);
  if (gid >= nb * H * P) return;
  const long bh = gid / P, h = bh % H, b = bh / H, g = h / (H / G);
  const float step = ssd_dt(dt[bh] + dt_bias[h], softplus, lo, hi);
  const float decay = exp(step * -exp(A_log[h])), dx = step * x[gid];
  __global float* S = state + gid * N;
  __global const float* Bg = Bt + (b * G + g) * N;
  __global const float* Cg = Ct + (b * G + g) * N;
  float out = 0.0f;
  for (long n = 0; n < N; ++n) {
    const float s = decay * S[n] + dx * Bg[n];
    S[n] = s;
    out += s * Cg[n];
  }
  y[gid] = has_D ? out + D[h] * x[gid] : out;
}
