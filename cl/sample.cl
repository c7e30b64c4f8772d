// Token sampling on the device: one work-group per row of logits turns the row into one token id.
// Shapes: logits (B, V) f32 row-major; seen (B, V) u8, 1 where the id is in the row's context
// (prompt + tokens generated so far); z, e: (B, V) f32 workspace; ids (B) i32 (the result);
// probs (B, V) f32 (written only when write_probs != 0: the filtered distribution, for tests).
// Kernels:
//   sample_rows    per row r, in this order (Hugging Face's logits processors and warpers):
//                  1. repetition penalty R: v = x, or for a seen id x / R when x > 0 else x * R;
//                     NaN becomes -inf
//                  2. temperature T <= 0: greedy, ids[r] = argmax v, ties to the lowest id;
//                     probs is one-hot. T > 0: z = v / T, m = max z, e = exp(z - m)
//                  3. top-k (0 < K < V): keep z >= the K-th largest z (ties at it are kept, as
//                     HF's `logits < topk(...)[-1]` does)
//                  4. top-p (P < 1): of the kept ids, keep those with z >= t, t the largest value
//                     whose set {z >= t} holds >= P of the kept probability mass (the smallest
//                     such top set; at least the maximum is always kept)
//                  5. draw u in [0, 1) from Philox4x32-10 (counter (row, step lo, step hi, 0),
//                     key (seed lo, seed hi)), then the first kept id, in increasing id order,
//                     at which the running sum of e exceeds u · (sum of kept e)
//   sample_mark    seen[b, ids[b]] = 1 for every row (the sampled token joins the context)
//   sample_philox  out[0..4) = Philox4x32-10 of (counter c0..c3, key k0, k1), as int bits: for tests
// Thresholds are found without sorting: z maps to an order-preserving 32-bit key, and a 16-way
// search fixes the threshold key 4 bits per pass (8 passes over the row): each pass puts every
// key into one of 16 bins by its next 4 bits (keys above the window into the top bin, keys
// below it into none), and suffix sums of the bins give the count (top-k) or mass (top-p) at
// or above 15 candidate thresholds at once.
// Knobs: LOCAL (-D, default 128): work-group size, a power of two. The host uses 128 on CPUs and
// 512 on GPUs (generate/sampler.hpp), so every sum has the same shape on devices of a kind.
// Deterministic: sums are fixed-shape trees or fixed serial loops; no atomics.
// Launch exactly one group per row (no early return ahead of barriers: PoCL 3.1 miscompiles it).
#ifndef LOCAL
#define LOCAL 128
#endif
#define SPLITS 16

// Order-preserving map of a float to a uint: a < b (as floats, no NaN) iff key(a) < key(b).
inline uint order_key(float f) {
  const uint u = as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// Philox4x32-10 (Salmon et al. 2011), as Random123's philox4x32.
inline uint4 philox4x32_10(uint4 c, uint2 k) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k.x += 0x9E3779B9u;
      k.y += 0xBB67AE85u;
    }
    const uint hi0 = mul_hi(0xD2511F53u, c.x), lo0 = 0xD2511F53u * c.x;
    const uint hi1 = mul_hi(0xCD9E8D57u, c.z), lo1 = 0xCD9E8D57u * c.z;
    c = (uint4)(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
  }
  return c;
}

// Uniform in [0, 1) with 24 random bits (exact in float).
inline float philox_uniform(ulong seed, long row, long step) {
  const ulong s = (ulong)step;
  const uint4 r = philox4x32_10((uint4)((uint)row, (uint)s, (uint)(s >> 32), 0u),
                                (uint2)((uint)seed, (uint)(seed >> 32)));
  return (float)(r.x >> 8) * 0x1.0p-24f;
}

// The largest key t with F(t) >= target, where F(t) = sum of w(c) over the row's c with
// key(z[c]) >= t, and w(c) = 1 (weighted == 0) or e[c] where key(z[c]) >= floor_key, else 0.
// F is non-increasing in t. Returns 0 when even F(0) < target (rounding). s: LOCAL * SPLITS
// floats of local memory. Every work-item of the group must call it; all get the result.
inline uint threshold_search(__global const float* z, __global const float* e, long V, int weighted,
                             uint floor_key, float target, __local float* s) {
  const int l = get_local_id(0);
  uint lo = 0;
  for (int shift = 28; shift >= 0; shift -= 4) {
    // bin[j], j = 1 .. SPLITS - 1: this work-item's weight with key in [t_j, t_(j+1)), where
    // t_j = lo + (j << shift) (the last bin also holds everything above); bin 0 is unused
    // (keys below t_1 count for no candidate). F(t_j) is then the sum of bins j and up.
    float bin[SPLITS];
    for (int j = 0; j < SPLITS; ++j) bin[j] = 0.0f;
    for (long c = l; c < V; c += LOCAL) {
      const uint k = order_key(z[c]);
      if (k < lo) continue;
      const uint d = min((k - lo) >> shift, (uint)(SPLITS - 1));
      bin[d] += weighted ? (k >= floor_key ? e[c] : 0.0f) : 1.0f;
    }
    float acc = 0.0f;  // suffix sums, from the top bin down: a fixed order
    for (int j = SPLITS - 1; j >= 1; --j) {
      acc += bin[j];
      s[j * LOCAL + l] = acc;
    }
    s[l] = 0.0f;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int w = LOCAL / 2; w > 0; w >>= 1) {
      if (l < w)
        for (int j = 1; j < SPLITS; ++j) s[j * LOCAL + l] += s[j * LOCAL + l + w];
      barrier(CLK_LOCAL_MEM_FENCE);
    }
    int best = 0;
    for (int j = 1; j < SPLITS; ++j)
      if (s[j * LOCAL] >= target) best = j;
    barrier(CLK_LOCAL_MEM_FENCE);  // s is overwritten by the next pass
    lo += (uint)best << shift;
  }
  return lo;
}

__kernel __attribute__((reqd_work_group_size(LOCAL, 1, 1)))
void sample_rows(__global const float* logits, ulong logits_off, __global const uchar* seen,
                 ulong seen_off, __global float* zw, ulong zw_off, __global float* ew, ulong ew_off,
                 __global int* ids, ulong ids_off, __global float* probs, ulong probs_off,
                 long V, float temperature, long top_k, float top_p, float penalty, long seed,
                 long step, int write_probs) {
  logits += logits_off; seen += seen_off; zw += zw_off; ew += ew_off; ids += ids_off;
  probs += probs_off;
  __local float s[LOCAL * SPLITS];
  __local int si[LOCAL];
  __local float shared_f[2];  // the picked chunk's base, the kept total
  __local int pick_item[1];
  const int l = get_local_id(0);
  const long r = get_group_id(0);
  __global const float* x = logits + r * V;
  __global const uchar* sn = seen + r * V;
  __global float* z = zw + r * V;
  __global float* e = ew + r * V;
  const int greedy = temperature <= 0.0f;

  // 1-2. Penalty, temperature, and the row's maximum with its lowest index.
  float best = -INFINITY;
  int best_i = (int)V;  // none yet
  for (long c = l; c < V; c += LOCAL) {
    float v = x[c];
    if (penalty != 1.0f && sn[c]) v = v > 0.0f ? v / penalty : v * penalty;
    if (isnan(v)) v = -INFINITY;
    if (v > best || (v == best && (int)c < best_i)) best = v, best_i = (int)c;
    z[c] = greedy ? v : v / temperature;
  }
  s[l] = best;
  si[l] = best_i;
  barrier(CLK_LOCAL_MEM_FENCE | CLK_GLOBAL_MEM_FENCE);  // z is read across work-items below
  for (int w = LOCAL / 2; w > 0; w >>= 1) {
    if (l < w) {
      const float b = s[l + w];
      const int bi = si[l + w];
      if (b > s[l] || (b == s[l] && bi < si[l])) s[l] = b, si[l] = bi;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  const int arg = si[0] < (int)V ? si[0] : 0;  // every value NaN or -inf: id 0
  barrier(CLK_LOCAL_MEM_FENCE);

  if (greedy) {
    if (l == 0) ids[r] = arg;
    if (write_probs)
      for (long c = l; c < V; c += LOCAL) probs[r * V + c] = c == arg ? 1.0f : 0.0f;
  } else {
    const float m = z[arg];  // the maximum of z (z is v / T elementwise, a monotone map)
    const uint max_key = order_key(m);
    for (long c = l; c < V; c += LOCAL) e[c] = exp(z[c] - m);
    barrier(CLK_GLOBAL_MEM_FENCE);

    // 3. Top-k: the K-th largest key (count of keys at or above it >= K).
    uint kth = 0;
    if (top_k > 0 && top_k < V) kth = threshold_search(z, e, V, 0, 0u, (float)top_k, s);
    // 4. Top-p over the kept mass.
    uint tau = kth;
    if (top_p < 1.0f) {
      float part = 0.0f;
      for (long c = l; c < V; c += LOCAL) part += order_key(z[c]) >= kth ? e[c] : 0.0f;
      const float kept_mass = group_sum(s, part, LOCAL);
      const uint t = threshold_search(z, e, V, 1, kth, top_p * kept_mass, s);
      tau = max(kth, min(t, max_key));
    }
    tau = min(tau, max_key);  // the maximum itself is always kept

    // 5. The draw: contiguous chunks of ids per work-item, their sums in a fixed order.
    const long chunk = (V + LOCAL - 1) / LOCAL;
    const long c0 = min((long)l * chunk, V), c1 = min(c0 + chunk, V);
    float part = 0.0f;
    for (long c = c0; c < c1; ++c) part += order_key(z[c]) >= tau ? e[c] : 0.0f;
    s[l] = part;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (l == 0) {
      float total = 0.0f;
      for (int i = 0; i < LOCAL; ++i) total += s[i];
      const float target = philox_uniform((ulong)seed, r, step) * total;
      // The first chunk with mass whose end passes the target; else (rounding) the last one.
      float base = 0.0f;
      int item = -1;
      for (int i = 0; i < LOCAL; ++i) {
        if (s[i] > 0.0f) {
          item = i;
          shared_f[0] = base;
          if (base + s[i] > target) break;
        }
        base += s[i];
      }
      shared_f[1] = total;
      pick_item[0] = item;
      if (item < 0) ids[r] = arg;  // no mass at all (NaN logits): the argmax
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    const float total = shared_f[1];
    // Before the walk below, not after it: PoCL 3.1 (LLVM 15) on AVX-512 CPUs compiled this
    // loop, placed after the walk's loop with its `break`, into one that also ran for the
    // work-items past V and wrote far beyond probs (a crash with V < LOCAL).
    if (write_probs) {
      const float inv = total > 0.0f ? 1.0f / total : 0.0f;
      for (long c = l; c < V; c += LOCAL) probs[r * V + c] = order_key(z[c]) >= tau ? e[c] * inv : 0.0f;
    }
    if (l == pick_item[0]) {
      // Walk the chunk in id order; if rounding keeps the running sum below the target, the
      // chunk's last kept id.
      const float target = philox_uniform((ulong)seed, r, step) * total;
      float cum = shared_f[0];
      int pick = -1, last = -1;
      for (long c = c0; c < c1; ++c) {
        if (order_key(z[c]) < tau) continue;
        last = (int)c;
        cum += e[c];
        if (cum > target) {
          pick = (int)c;
          break;
        }
      }
      ids[r] = pick >= 0 ? pick : (last >= 0 ? last : arg);
    }
  }
}

__kernel void sample_mark(__global uchar* seen, ulong seen_off, __global const int* ids, ulong ids_off,
                          long B, long V) {
  seen += seen_off; ids += ids_off;
  const long b = get_global_id(0);
  if (b < B) {
    const int id = ids[b];
    if (id >= 0 && id < V) seen[b * V + id] = 1;
  }
}

__kernel void sample_philox(__global int* out, ulong out_off, int c0, int c1, int c2, int c3,
                            int k0, int k1) {
  out += out_off;
  if (get_global_id(0) == 0) {
    const uint4 r = philox4x32_10((uint4)((uint)c0, (uint)c1, (uint)c2, (uint)c3), (uint2)((uint)k0, (uint)k1));
    out[0] = as_int(r.x); out[1] = as_int(r.y); out[2] = as_int(r.z); out[3] = as_int(r.w);
  }
}
