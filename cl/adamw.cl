// AdamW over flat parameter chunks (see include/magellano/optim/adamw.hpp), and the global
// gradient norm for clipping. Deterministic: fixed work-group sizes, fixed summation order.
// Kernels:
//   sumsq_partial  partial[k] = sum of g[i]^2 over group k's contiguous block
//                  g: (n) one gradient chunk; partial: (G), G = number of groups launched
//   norm_final     stats[0] = sqrt(sum(partial[0..count)));
//                  when max_norm > 0 also stats[1] = min(1, max_norm / (stats[0] + 1e-6))
//                  (torch.nn.utils.clip_grad_norm_'s coefficient); one work-group
//   adamw_step     torch.optim.AdamW's update of one chunk, in place:
//                  p, g, m, v: (n); elements [0, decay_end) are in the weight-decay group;
//                  stats: (2) from norm_final, read only when clip != 0
// -D knobs: LOCAL (default 256), the work-group size of sumsq_partial and norm_final.
// Build adamw_step with -cl-fp32-correctly-rounded-divide-sqrt (as the host does) so sqrt and
// division round like CUDA's / the CPU's IEEE operations that torch uses.
#ifndef LOCAL
#define LOCAL 256
#endif

__kernel __attribute__((reqd_work_group_size(LOCAL, 1, 1)))
void sumsq_partial(__global const float* g, ulong g_off, __global float* partial,
                   ulong partial_off, long n) {
  g += g_off; partial += partial_off;
  __local float s[LOCAL];
  // Group k sums the contiguous block [k * per, (k + 1) * per), its work-items striding by
  // LOCAL inside it: coalesced on GPUs and cache friendly on CPUs (a grid-wide stride ran
  // ~10x slower on PoCL).
  long groups = get_num_groups(0);
  long per = (n + groups - 1) / groups;
  long begin = get_group_id(0) * per, end = min(n, begin + per);
  float acc = 0.0f;
  for (long i = begin + get_local_id(0); i < end; i += LOCAL) acc += g[i] * g[i];
  float total = group_sum(s, acc, LOCAL);
  if (get_local_id(0) == 0) partial[get_group_id(0)] = total;
}

__kernel __attribute__((reqd_work_group_size(LOCAL, 1, 1)))
void norm_final(__global const float* partial, ulong partial_off, __global float* stats,
                ulong stats_off, int count, float max_norm) {
  partial += partial_off; stats += stats_off;
  __local float s[LOCAL];
  float v = 0.0f;
  for (int i = get_local_id(0); i < count; i += LOCAL) v += partial[i];
  float total = group_sum(s, v, LOCAL);
  if (get_local_id(0) == 0) {
    float norm = sqrt(total);
    stats[0] = norm;
    if (max_norm > 0.0f) stats[1] = fmin(1.0f, max_norm / (norm + 1e-6f));
  }
}

// Per element, with the step's scalars computed on the host (double, then rounded to float as
// torch's fp32 kernels round their scalar arguments):
//   g' = coef * g                                 coef = stats[1] when clip, else 1
//   p  = p * decay                                decay = 1 - lr * wd (decay group only)
//   m  = b1 * m + omb1 * g'                       omb1 = 1 - b1
//   v  = b2 * v + omb2 * g'^2                     omb2 = 1 - b2
//   p  = p - step_size * (m / (sqrt(v) / bc2_sqrt + eps))
//                                                 step_size = lr / (1 - b1^t), bc2_sqrt = sqrt(1 - b2^t)
__kernel void adamw_step(__global float* p, ulong p_off, __global const float* g, ulong g_off,
                         __global float* m, ulong m_off, __global float* v, ulong v_off,
                         __global const float* stats, ulong stats_off, long n, long decay_end,
                         float decay, float b1, float omb1, float b2, float omb2, float step_size,
                         float bc2_sqrt, float eps, int clip) {
  p += p_off; g += g_off; m += m_off; v += v_off; stats += stats_off;
  long i = get_global_id(0);
  if (i < n) {
    float coef = clip ? stats[1] : 1.0f;
    float gi = g[i] * coef;
    float pi = p[i];
    if (i < decay_end) pi = pi * decay;
    float mi = b1 * m[i] + omb1 * gi;
    float vi = b2 * v[i] + omb2 * (gi * gi);
    m[i] = mi;
    v[i] = vi;
    float denom = sqrt(vi) / bc2_sqrt + eps;
    p[i] = pi - step_size * (mi / denom);
  }
}
