// The pass over the chunks of a selective scan's chunked mappings (cl/selective_scan_states.cl,
// cl/selective_scan_lanes.cl): both recurrences are linear in what they carry, so with each
// chunk's summary (P: product of its decays; S or Q: its own result from a zero carry) one short
// sequential walk per (b, e, n) gives every chunk its true carry.
// Layouts: (B, NC, N, E) for P, S, Q, hs, Gin; h_last (B, E, N).
//   scan_carry_fwd   hs (the state entering each chunk) and h_last, from P, S
//   scan_carry_bwd   Gin (dL/dh entering each chunk from later ones), from P, Q
// Knob: -DDSTATE=N. One work-item per (b, e, n), e fastest (coalesced); the walk is unrolled so
// that the loads of several chunks are in flight at once (restrict: no store aliases them).
#ifndef DSTATE
#define DSTATE 16
#endif

__kernel void scan_carry_fwd(__global const float* restrict P, ulong P_off, __global const float* restrict S, ulong S_off,
                             __global float* restrict hs, ulong hs_off, __global float* restrict h_last, ulong h_last_off,
                             long nb_arg, long L_arg, long E_arg, long chunk_arg) {
  const int nb = nb_arg, L = L_arg, E = E_arg, chunk = chunk_arg;  // fit: checked by the host
  P += P_off; S += S_off; hs += hs_off; h_last += h_last_off;
  const int nc = (L + chunk - 1) / chunk;
  const long gid = get_global_id(0);
  if (gid >= (long)nb * E * DSTATE) return;
  const int e = gid % E, n = (gid / E) % DSTATE, b = gid / ((long)E * DSTATE);
  float h = 0.0f;
#pragma unroll 8
  for (int c = 0; c < nc; ++c) {
    const long o = (((long)b * nc + c) * DSTATE + n) * E + e;
    hs[o] = h;
    h = P[o] * h + S[o];
  }
  h_last[((long)b * E + e) * DSTATE + n] = h;
}

__kernel void scan_carry_bwd(__global const float* restrict P, ulong P_off, __global const float* restrict Q, ulong Q_off,
                             __global float* restrict Gin, ulong Gin_off,
                             long nb_arg, long L_arg, long E_arg, long chunk_arg) {
  const int nb = nb_arg, L = L_arg, E = E_arg, chunk = chunk_arg;  // fit: checked by the host
  P += P_off; Q += Q_off; Gin += Gin_off;
  const int nc = (L + chunk - 1) / chunk;
  const long gid = get_global_id(0);
  if (gid >= (long)nb * E * DSTATE) return;
  const int e = gid % E, n = (gid / E) % DSTATE, b = gid / ((long)E * DSTATE);
  float g = 0.0f;
#pragma unroll 8
  for (int c = nc - 1; c >= 0; --c) {
    const long o = (((long)b * nc + c) * DSTATE + n) * E + e;
    Gin[o] = g;
    g = P[o] * g + Q[o];
  }
}
