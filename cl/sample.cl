// Token sampling on the device: a row of logits becomes one token id.
// Shapes: logits (B, V) f32 row-major; seen (B, V) u8, 1 where the id is in the row's context
// (prompt + tokens generated so far); z, e: (B, V) f32 workspace; ids (B) i32 (the result);
// probs (B, V) f32 (written only when write_probs != 0: the filtered distribution, for tests).
// The steps, per row r (Hugging Face's logits processors and warpers):
//   1. repetition penalty R: v = x, or for a seen id x / R when x > 0 else x * R; NaN becomes -inf
//   2. temperature T <= 0: greedy, ids[r] = argmax v, ties to the lowest id; probs is one-hot.
//      T > 0: z = v / T, m = max z, e = exp(z - m)
//   3. top-k (0 < K < V): keep z >= the K-th largest z (ties at it are kept, as HF's
//      `logits < topk(...)[-1]` does)
//   4. top-p (P < 1): of the kept ids, keep those with z >= t, t the largest value whose set
//      {z >= t} holds >= P of the kept probability mass (the smallest such top set; at least the
//      maximum is always kept)
//   5. draw u in [0, 1) from Philox4x32-10 (counter (row, step lo, step hi, 0), key (seed lo,
//      seed hi)), then the first kept id, in increasing id order, at which the running sum of e
//      exceeds u · (sum of kept e)
// Kernels:
//   sample_rows      the full path: one work-group of LOCAL per row runs steps 1-5 over the whole
//                    row (~20 passes over it). Any parameters. With only_unfinished != 0, only the
//                    rows whose unfinished[r] is set (by sample_merge); the others keep their ids.
//   sample_segments  the top-k fast path's first half (0 < K <= TOPK_MAX, K < V, T > 0): S work-groups
//                    of SEG_LOCAL per row, one per segment of ceil(V / S) ids; each applies steps 1-2
//                    to its segment and writes its candidates in id order: the ids whose key is >=
//                    a bound at or below the segment's own K-th largest key (so its top K, ties
//                    included, and at most 2K more unless tied; all ids when the segment holds
//                    fewer than K): at most CAP (id, key) pairs, and their count (> CAP: overflowed).
//   sample_merge     the second half, one work-group of LOCAL per row: the candidates of all segments
//                    hold every id the row's top-k keeps (an id kept by the row has fewer than K ids
//                    above it, so its segment kept it too), and the K-th largest key among them is
//                    the row's. Steps 3-5 then run on the kept ids only, held in local memory, with
//                    the same sums as sample_rows (below): same ids, same probabilities, bit for bit.
//                    A row whose segments overflowed, or that keeps more than KEPT_MAX ids (ties),
//                    gets unfinished[r] = 1 (else 0): the host launches sample_rows after it with
//                    only_unfinished = 1 for those rows (no host read; inlining sample_rows' steps
//                    here instead made PoCL 3.1 take 30 s longer to compile the program).
//   sample_mark      seen[b, ids[b]] = 1 for every row (the sampled token joins the context)
//   sample_philox    out[0..4) = Philox4x32-10 of (counter c0..c3, key k0, k1), as int bits: for tests
// Thresholds are found without sorting: z maps to an order-preserving 32-bit key, and a 16-way
// search fixes the threshold key 4 bits per pass (8 passes): each pass puts every key into one of
// 16 bins by its next 4 bits (keys above the window into the top bin, keys below it into none),
// and suffix sums of the bins give the count (top-k) or mass (top-p) at or above 15 candidate
// thresholds at once. Counts are exact (f32 below 2^24, or int), so the K-th key does not depend on
// the order they are summed in; masses do, and sample_merge sums them exactly as sample_rows:
// work-item l's strided part (ids = l mod LOCAL) and its contiguous chunk of ceil(V / LOCAL) ids,
// each in id order, then the same trees. Ids it does not hold add 0 there, which changes no sum.
// Knobs (-D): LOCAL (default 128): sample_rows' and sample_merge's work-group size, a power of two;
// the host uses 128 on CPUs and 512 on GPUs (generate/sampler.hpp), so every sum has the same shape
// on devices of a kind. SEG_LOCAL (128): sample_segments' work-group size. TOPK_MAX (128): the
// largest K of the fast path; CAP = KEPT_MAX = 2 TOPK_MAX.
// Deterministic: sums are fixed-shape trees or fixed serial loops; the only atomics are local int
// counts and flags, exact in any order.
// Launch exactly one group per row (per segment): no early return ahead of barriers (PoCL 3.1
// miscompiles it); branches around barriers are uniform over the group, and PoCL 3.1 needed a
// barrier at the end of sample_row_kept and no `for (i = l; ...)` loop right after a barrier in
// one (see there): tests/ops/test_sample_fast.cpp caught both.
#ifndef LOCAL
#define LOCAL 128
#endif
#ifndef SEG_LOCAL
#define SEG_LOCAL 128
#endif
#ifndef TOPK_MAX
#define TOPK_MAX 128
#endif
#define SPLITS 16
#define CAP (2 * TOPK_MAX)
#define KEPT_MAX (2 * TOPK_MAX)

// Order-preserving map of a float to a uint: a < b (as floats, no NaN) iff key(a) < key(b).
inline uint order_key(float f) {
  const uint u = as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// Its inverse: key_value(order_key(f)) == f, bit for bit.
inline float key_value(uint k) { return as_float((k & 0x80000000u) ? (k & 0x7FFFFFFFu) : ~k); }

// Step 1 for one id.
inline float penalized(float x, uchar seen, float penalty) {
  float v = x;
  if (penalty != 1.0f && seen) v = v > 0.0f ? v / penalty : v * penalty;
  if (isnan(v)) v = -INFINITY;
  return v;
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

// One pass of the f32 threshold search, after each work-item has filled its bins: bin[j], j = 1 ..
// SPLITS - 1, is this work-item's weight with key in [t_j, t_(j+1)), where t_j = lo + (j << shift)
// (the last bin also holds everything above; bin 0 is unused: keys below t_1 count for no
// candidate). F(t_j) is the sum of bins j and up over the group: suffix sums from the top bin down,
// then a tree over the LOCAL work-items. Returns the largest j with F(t_j) >= target, else 0.
// s: LOCAL * SPLITS floats.
inline int pick_bin(const float* bin, float target, __local float* s) {
  const int l = get_local_id(0);
  float acc = 0.0f;
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
  return best;
}

// The work-group's largest value over each work-item's (best, best_i), ties to the lowest index;
// every work-item gets its index (0 when no item has one: every value NaN or -inf). s, si: LOCAL
// floats and ints of local memory. The first barrier also fences global memory, so that what the
// items wrote before it is visible to the whole group after it.
inline int group_argmax(float best, int best_i, long V, __local float* s, __local int* si) {
  const int l = get_local_id(0);
  s[l] = best;
  si[l] = best_i;
  barrier(CLK_LOCAL_MEM_FENCE | CLK_GLOBAL_MEM_FENCE);
  for (int w = LOCAL / 2; w > 0; w >>= 1) {
    if (l < w) {
      const float b = s[l + w];
      const int bi = si[l + w];
      if (b > s[l] || (b == s[l] && bi < si[l])) s[l] = b, si[l] = bi;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  const int arg = si[0] < (int)V ? si[0] : 0;
  barrier(CLK_LOCAL_MEM_FENCE);  // s and si are reused after
  return arg;
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
    float bin[SPLITS];
    for (int j = 0; j < SPLITS; ++j) bin[j] = 0.0f;
    for (long c = l; c < V; c += LOCAL) {
      const uint k = order_key(z[c]);
      if (k < lo) continue;
      const uint d = min((k - lo) >> shift, (uint)(SPLITS - 1));
      bin[d] += weighted ? (k >= floor_key ? e[c] : 0.0f) : 1.0f;
    }
    lo += (uint)pick_bin(bin, target, s) << shift;
  }
  return lo;
}

// threshold_search, weighted, over a row of which only the nk ids kid[] (increasing) can weigh
// (keys kkey[], e values ke[]; the others lie below floor_key): the same bins, the same sums.
inline uint kept_threshold_search(__local const int* kid, __local const uint* kkey, __local const float* ke,
                                  int nk, uint floor_key, float target, __local float* s) {
  const int l = get_local_id(0);
  uint lo = 0;
  for (int shift = 28; shift >= 0; shift -= 4) {
    float bin[SPLITS];
    for (int j = 0; j < SPLITS; ++j) bin[j] = 0.0f;
    for (int i = 0; i < nk; ++i) {
      const uint k = kkey[i];
      if (kid[i] % LOCAL != l || k < lo) continue;
      const uint d = min((k - lo) >> shift, (uint)(SPLITS - 1));
      bin[d] += k >= floor_key ? ke[i] : 0.0f;
    }
    lo += (uint)pick_bin(bin, target, s) << shift;
  }
  return lo;
}

// The largest key t with at least k of keys[0..n) >= t (0 when n < k): the same 16-way search
// with int counts in local bins (hist: SPLITS ints). With enough > 0 it may stop early, at a
// smaller t, once at most `enough` keys are >= t (enough = 0: exact). Every work-item of the group
// must call it; the passes after a stop run their barriers without work.
inline uint kth_key(__global const uint* keys, long n, long k, long enough, __local int* hist) {
  const int l = get_local_id(0), nl = get_local_size(0);
  uint lo = 0;
  long at_lo = n;  // keys >= lo
  int done = at_lo <= enough;
  for (int shift = 28; shift >= 0; shift -= 4) {
    for (int j = l; j < SPLITS; j += nl) hist[j] = 0;
    barrier(CLK_LOCAL_MEM_FENCE);
    int bin[SPLITS];  // this work-item's counts first: few atomics, on few addresses
    for (int j = 0; j < SPLITS; ++j) bin[j] = 0;
    const long todo = done ? 0 : n;
    for (long c = l; c < todo; c += nl) {
      const uint key = keys[c];
      if (key < lo) continue;
      ++bin[min((key - lo) >> shift, (uint)(SPLITS - 1))];
    }
    for (int j = 1; j < SPLITS; ++j)
      if (bin[j] > 0) atomic_add(&hist[j], bin[j]);
    barrier(CLK_LOCAL_MEM_FENCE);
    long above = 0, at_best = at_lo;
    int best = 0;
    for (int j = SPLITS - 1; j >= 1; --j) {
      above += hist[j];
      if (best == 0 && above >= k) best = j, at_best = above;
    }
    barrier(CLK_LOCAL_MEM_FENCE);  // hist is cleared by the next pass
    if (!done) {
      lo += (uint)best << shift;
      at_lo = at_best;
      done = at_lo <= enough;
    }
  }
  return lo;
}

// The exclusive prefix sum of v over the group's n work-items (a Hillis-Steele scan in s: n ints);
// *total gets the sum. Every work-item of the group must call it.
inline int group_exclusive_scan(__local int* s, int v, int n, int* total) {
  const int l = get_local_id(0);
  s[l] = v;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int w = 1; w < n; w <<= 1) {
    const int t = l >= w ? s[l - w] : 0;
    barrier(CLK_LOCAL_MEM_FENCE);
    s[l] += t;
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  const int inclusive = s[l];
  *total = s[n - 1];
  barrier(CLK_LOCAL_MEM_FENCE);
  return inclusive - v;
}

// Step 5's choice of chunk, by work-item 0 alone: s[i] is chunk i's kept mass. The total is a
// serial sum; the picked chunk is the first with mass whose end passes u · total (else, by
// rounding, the last one with mass): its index -> pick_item[0] (-1: none), its base ->
// shared_f[0], the total -> shared_f[1]. No mass at all (NaN logits): *id = arg.
inline void draw_chunk(__local const float* s, __local float* shared_f, __local int* pick_item, ulong seed,
                       long r, long step, int arg, __global int* id) {
  float total = 0.0f;
  for (int i = 0; i < LOCAL; ++i) total += s[i];
  const float target = philox_uniform(seed, r, step) * total;
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
  if (item < 0) *id = arg;
}

// Steps 1-5 over the whole row r (sample_rows, also launched after sample_merge for its unfinished
// rows). x, sn, z, e: the row's; probs: the whole (B, V) buffer. Local memory: s (LOCAL *
// SPLITS), si (LOCAL), shared_f (2), pick_item (1).
inline void sample_row_full(__global const float* x, __global const uchar* sn, __global float* z,
                            __global float* e, __global int* ids, __global float* probs, long r, long V,
                            float temperature, long top_k, float top_p, float penalty, long seed, long step,
                            int write_probs, __local float* s, __local int* si, __local float* shared_f,
                            __local int* pick_item) {
  const int l = get_local_id(0);
  const int greedy = temperature <= 0.0f;

  // 1-2. Penalty, temperature, and the row's maximum with its lowest index.
  float best = -INFINITY;
  int best_i = (int)V;  // none yet
  for (long c = l; c < V; c += LOCAL) {
    const float v = penalized(x[c], sn[c], penalty);
    if (v > best || (v == best && (int)c < best_i)) best = v, best_i = (int)c;
    z[c] = greedy ? v : v / temperature;
  }
  const int arg = group_argmax(best, best_i, V, s, si);  // z is read across work-items below

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
    if (l == 0) draw_chunk(s, shared_f, pick_item, (ulong)seed, r, step, arg, ids + r);
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

// Steps 4-5 of sample_row_full for a row whose top-k keeps only the nk ids kid[] (increasing,
// < KEPT_MAX; keys kkey[], e values ke[]), kth the K-th largest key: the same sums (see the top).
inline void sample_row_kept(__local const int* kid, __local const uint* kkey, __local const float* ke, int nk,
                            uint kth, uint max_key, int arg, __global int* ids, __global float* probs, long r,
                            long V, float top_p, long seed, long step, int write_probs, __local float* s,
                            __local float* shared_f, __local int* pick_item) {
  const int l = get_local_id(0);
  uint tau = kth;
  if (top_p < 1.0f) {
    float part = 0.0f;
    for (int i = 0; i < nk; ++i)
      if (kid[i] % LOCAL == l) part += kkey[i] >= kth ? ke[i] : 0.0f;
    const float kept_mass = group_sum(s, part, LOCAL);
    const uint t = kept_threshold_search(kid, kkey, ke, nk, kth, top_p * kept_mass, s);
    tau = max(kth, min(t, max_key));
  }
  tau = min(tau, max_key);

  const long chunk = (V + LOCAL - 1) / LOCAL;
  const long c0 = min((long)l * chunk, V), c1 = min(c0 + chunk, V);
  float part = 0.0f;
  for (int i = 0; i < nk; ++i)
    if (kid[i] >= c0 && kid[i] < c1) part += kkey[i] >= tau ? ke[i] : 0.0f;
  s[l] = part;
  barrier(CLK_LOCAL_MEM_FENCE);
  if (l == 0) draw_chunk(s, shared_f, pick_item, (ulong)seed, r, step, arg, ids + r);
  barrier(CLK_LOCAL_MEM_FENCE);
  const float total = shared_f[1];
  if (write_probs) {  // zeros, then the kept ids' values, each id by the work-item that zeroed it
    // (no barrier between: PoCL 3.1 ran a `for (i = l; i < nk; i += LOCAL)` loop placed after a
    // barrier here past nk, writing stale ids).
    const float inv = total > 0.0f ? 1.0f / total : 0.0f;
    for (long c = l; c < V; c += LOCAL) probs[r * V + c] = 0.0f;
    for (int i = 0; i < nk; ++i)
      if (kid[i] % LOCAL == l) probs[r * V + kid[i]] = kkey[i] >= tau ? ke[i] * inv : 0.0f;
  }
  if (l == pick_item[0]) {
    const float target = philox_uniform((ulong)seed, r, step) * total;
    float cum = shared_f[0];
    int pick = -1, last = -1;
    for (int i = 0; i < nk; ++i) {
      if (kid[i] < c0 || kid[i] >= c1 || kkey[i] < tau) continue;
      last = kid[i];
      cum += ke[i];
      if (cum > target) {
        pick = kid[i];
        break;
      }
    }
    ids[r] = pick >= 0 ? pick : (last >= 0 ? last : arg);
  }
  // PoCL 3.1 compiled a call of this function inside a branch, with code after the branch, into
  // one that skipped the walk above for every work-item (no id written), unless this barrier ends it.
  barrier(CLK_LOCAL_MEM_FENCE);
}

__kernel __attribute__((reqd_work_group_size(LOCAL, 1, 1)))
void sample_rows(__global const float* logits, ulong logits_off, __global const uchar* seen,
                 ulong seen_off, __global float* zw, ulong zw_off, __global float* ew, ulong ew_off,
                 __global int* ids, ulong ids_off, __global float* probs, ulong probs_off,
                 __global const int* unfinished, ulong unfinished_off, int only_unfinished,
                 long V, float temperature, long top_k, float top_p, float penalty, long seed,
                 long step, int write_probs) {
  logits += logits_off; seen += seen_off; zw += zw_off; ew += ew_off; ids += ids_off;
  probs += probs_off; unfinished += unfinished_off;
  __local float s[LOCAL * SPLITS];
  __local int si[LOCAL];
  __local float shared_f[2];  // the picked chunk's base, the kept total
  __local int pick_item[1];
  const long r = get_group_id(0);
  if (!only_unfinished || unfinished[r])  // uniform over the group
    sample_row_full(logits + r * V, seen + r * V, zw + r * V, ew + r * V, ids, probs, r, V, temperature, top_k,
                    top_p, penalty, seed, step, write_probs, s, si, shared_f, pick_item);
}

// Group g = r * S + seg: segment seg of row r, ids [seg * len, min((seg + 1) * len, V)), len =
// ceil(V / S). Writes the segment's keys (of z) to zw (as uint), then its candidates: cand_id,
// cand_key (B, S, CAP) i32 (the key's bits), the first min(count, CAP) in id order; counts (B, S).
// keep: the K of the search (top_k; tests pass less for a broken variant). The search stops once
// at most min(2 keep, CAP) keys remain at or above its bound: a superset of the segment's top keep
// (ties included) in fewer passes, which holds every id the row keeps all the same.
__kernel __attribute__((reqd_work_group_size(SEG_LOCAL, 1, 1)))
void sample_segments(__global const float* logits, ulong logits_off, __global const uchar* seen, ulong seen_off,
                     __global float* zw, ulong zw_off, __global int* cand_id, ulong cand_id_off,
                     __global int* cand_key, ulong cand_key_off, __global int* counts, ulong counts_off,
                     long V, long S, float temperature, long keep, float penalty) {
  logits += logits_off; seen += seen_off; zw += zw_off; cand_id += cand_id_off; cand_key += cand_key_off;
  counts += counts_off;
  __local int hist[SPLITS];
  __local int scan[SEG_LOCAL];
  const int l = get_local_id(0);
  const long g = get_group_id(0), r = g / S, seg = g % S;
  const long len = (V + S - 1) / S, c0 = min(seg * len, V), n = min(c0 + len, V) - c0;
  __global const float* x = logits + r * V + c0;
  __global const uchar* sn = seen + r * V + c0;
  __global uint* key = (__global uint*)(zw + r * V + c0);
  for (long i = l; i < n; i += SEG_LOCAL) key[i] = order_key(penalized(x[i], sn[i], penalty) / temperature);
  barrier(CLK_GLOBAL_MEM_FENCE);
  const uint kth = kth_key(key, n, keep, min(2 * keep, (long)CAP), hist);
  // Work-item l writes its contiguous run of the segment, after the runs before it.
  const long run = (n + SEG_LOCAL - 1) / SEG_LOCAL;
  const long i0 = min((long)l * run, n), i1 = min(i0 + run, n);
  int mine = 0;
  for (long i = i0; i < i1; ++i) mine += key[i] >= kth;
  int count;
  int at = group_exclusive_scan(scan, mine, SEG_LOCAL, &count);
  __global int* ci = cand_id + (r * S + seg) * CAP;
  __global int* ck = cand_key + (r * S + seg) * CAP;
  for (long i = i0; i < i1 && at < CAP; ++i)
    if (key[i] >= kth) {
      ci[at] = (int)(c0 + i);
      ck[at] = as_int(key[i]);
      ++at;
    }
  if (l == 0) counts[r * S + seg] = count;
}

// One group per row after sample_segments (S <= LOCAL segments). The candidates are gathered in id
// order into the row's z / e workspace (keys, ids); the K-th largest key among them is the row's;
// the kept ones (keys >= it) go to local memory with their e, and sample_row_kept finishes. The
// argmax (ties to the lowest id, as sample_rows) is among the candidates: it is kept.
// unfinished: (B) i32, 1 where the row is left to sample_rows (see the top).
__kernel __attribute__((reqd_work_group_size(LOCAL, 1, 1)))
void sample_merge(__global const float* logits, ulong logits_off, __global const uchar* seen, ulong seen_off,
                  __global float* zw, ulong zw_off, __global float* ew, ulong ew_off, __global int* ids,
                  ulong ids_off, __global float* probs, ulong probs_off, __global const int* cand_id,
                  ulong cand_id_off, __global const int* cand_key, ulong cand_key_off,
                  __global const int* counts, ulong counts_off, __global int* unfinished, ulong unfinished_off,
                  long V, long S, float temperature, long top_k, float top_p, float penalty, long seed, long step,
                  int write_probs) {
  logits += logits_off; seen += seen_off; zw += zw_off; ew += ew_off; ids += ids_off; probs += probs_off;
  cand_id += cand_id_off; cand_key += cand_key_off; counts += counts_off; unfinished += unfinished_off;
  __local float s[LOCAL * SPLITS];
  __local int si[LOCAL];
  __local float shared_f[2];
  __local int pick_item[1];
  __local int hist[SPLITS];
  __local int overflow[1];
  __local int kid[KEPT_MAX];
  __local uint kkey[KEPT_MAX];
  __local float ke[KEPT_MAX];
  const int l = get_local_id(0);
  const long r = get_group_id(0);
  __global const float* x = logits + r * V;
  __global const uchar* sn = seen + r * V;
  __global uint* gkey = (__global uint*)(zw + r * V);  // the gathered candidates: keys
  __global int* gid = (__global int*)(ew + r * V);     // and ids

  // Where each segment's candidates go: after those of the segments before it.
  if (l == 0) overflow[0] = 0;
  barrier(CLK_LOCAL_MEM_FENCE);
  int mine = 0;
  if (l < S) {
    const int c = counts[r * S + l];
    if (c > CAP) atomic_or(overflow, 1);
    mine = min(c, CAP);
  }
  int n;
  const int off = group_exclusive_scan(si, mine, LOCAL, &n);
  si[l] = off;
  barrier(CLK_LOCAL_MEM_FENCE);
  int ok = overflow[0] == 0;
  int nk = 0, arg = 0;
  uint kth = 0, max_key = 0;
  if (ok) {
    // Gather, and each work-item's argmax of v over its candidates.
    float best = -INFINITY;
    int best_i = (int)V;
    for (int p = l; p < n; p += LOCAL) {
      int lo = 0, hi = (int)S - 1;  // the last segment whose offset is <= p
      while (lo < hi) {
        const int mid = (lo + hi + 1) / 2;
        if (si[mid] <= p) lo = mid;
        else hi = mid - 1;
      }
      const long slot = (r * S + lo) * CAP + (p - si[lo]);
      const int c = cand_id[slot];
      gid[p] = c;
      gkey[p] = as_uint(cand_key[slot]);
      const float v = penalized(x[c], sn[c], penalty);
      if (v > best || (v == best && c < best_i)) best = v, best_i = c;
    }
    barrier(CLK_LOCAL_MEM_FENCE | CLK_GLOBAL_MEM_FENCE);
    arg = group_argmax(best, best_i, V, s, si);
    const float m = penalized(x[arg], sn[arg], penalty) / temperature;
    max_key = order_key(m);

    // The row's K-th largest key, then the kept candidates in id order (work-item l: its run).
    kth = kth_key(gkey, n, top_k, 0, hist);
    const int run = (n + LOCAL - 1) / LOCAL;
    const int p0 = min(l * run, n), p1 = min(p0 + run, n);
    int kept = 0;
    for (int p = p0; p < p1; ++p) kept += gkey[p] >= kth;
    int at = group_exclusive_scan(si, kept, LOCAL, &nk);
    ok = nk <= KEPT_MAX;
    if (ok)
      for (int p = p0; p < p1; ++p)
        if (gkey[p] >= kth) {
          kid[at] = gid[p];
          kkey[at] = gkey[p];
          ke[at] = exp(key_value(gkey[p]) - m);
          ++at;
        }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (ok)
    sample_row_kept(kid, kkey, ke, nk, kth, max_key, arg, ids, probs, r, V, top_p, seed, step, write_probs, s,
                    shared_f, pick_item);
  if (l == 0) unfinished[r] = !ok;
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
