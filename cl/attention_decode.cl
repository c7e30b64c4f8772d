// Attention decoding against a paged KV cache (include/magellano/ops/attention_decode.hpp):
//   k_pool, v_pool: (NB, BS, KVH, HEADDIM)   table: (B, MB) int   positions, lengths: (B) int
//   q, out: (B, H, HEADDIM)   part: (B, H, NS, HEADDIM + 2): per split the unnormalised output,
//   then its running max m and sum l
// Row b's position p lives in block table[b, p / BS], slot p % BS; a table entry outside [0, NB)
// reads as a position that is not there (weight 0).
// Kernels:
//   kv_cache_write        a work-item per (b, t, kv head, vector of HEADDIM)
//   attn_decode           a work-group of DITEMS per (b, head, split of `split` positions): scores of
//                         DTILE positions at a time into local memory (with each position's row
//                         offset in the pools), online softmax; the weighted sum of v rows over
//                         the items: with NVD column vectors and DITEMS >= 2 NVD, PG = DITEMS / NVD
//                         groups of items each take every PG-th position of the tile for all
//                         columns, and the groups' partial sums are added in group order at the
//                         end; else (PG = 1) item lid owns column vectors lid, lid + DITEMS, ...;
//                         with one split (ns == 1) it writes the normalised output itself
//   attn_decode_combine   a work-item per output element: the splits of its row in order
// Knobs: HEADDIM, VEC (divides HEADDIM), DITEMS, DTILE (a multiple of DITEMS).
#ifndef HEADDIM
#define HEADDIM 64
#endif
#ifndef VEC
#define VEC 1
#endif
#ifndef DITEMS
#define DITEMS 64
#endif
#ifndef DTILE
#define DTILE 128
#endif
#define NVD (HEADDIM / VEC)
#define NOWN ((NVD + DITEMS - 1) / DITEMS)  // column vectors per item
#define PG (DITEMS >= 2 * NVD ? DITEMS / NVD : 1)  // position groups of the weighted v sum

#if VEC == 1
typedef float vf;
#define VLOAD(p) (*(p))
#define VSTORE(v, p) (*(p) = (v))
#define HSUM(v) (v)
#elif VEC == 4
typedef float4 vf;
#define VLOAD(p) vload4(0, p)
#define VSTORE(v, p) vstore4(v, 0, p)
#define HSUM(v) (((v).s0 + (v).s1) + ((v).s2 + (v).s3))
#elif VEC == 8
typedef float8 vf;
#define VLOAD(p) vload8(0, p)
#define VSTORE(v, p) vstore8(v, 0, p)
#define HSUM4(v) (((v).s0 + (v).s1) + ((v).s2 + (v).s3))
#define HSUM(v) (HSUM4((v).lo) + HSUM4((v).hi))
#elif VEC == 16
typedef float16 vf;
#define VLOAD(p) vload16(0, p)
#define VSTORE(v, p) vstore16(v, 0, p)
#define HSUM(v) hsum16(v)
#endif

// The physical block of row b's position p, or -1 when the table does not hold one.
inline long block_of_position(__global const int* table, long b, long p, long BS, long MB, long NB) {
  const long i = p / BS;
  if (p < 0 || i >= MB) return -1;
  const long blk = table[b * MB + i];
  return blk >= 0 && blk < NB ? blk : -1;
}

// k, v: (B, T, KVH, HEADDIM) into the pools at positions[b] + t.
__kernel void kv_cache_write(__global float* k_pool, ulong k_pool_off, __global float* v_pool, ulong v_pool_off,
                             __global const float* k, ulong k_off, __global const float* v, ulong v_off,
                             __global const int* table, ulong table_off, __global const int* positions,
                             ulong positions_off, long B, long T, long KVH, long BS, long MB, long NB) {
  k_pool += k_pool_off; v_pool += v_pool_off; k += k_off; v += v_off; table += table_off;
  positions += positions_off;
  const long i = get_global_id(0);
  if (i >= B * T * KVH * NVD) return;
  const long c = (i % NVD) * VEC, kvh = (i / NVD) % KVH, t = (i / (NVD * KVH)) % T, b = i / (NVD * KVH * T);
  const long p = (long)positions[b] + t;
  const long blk = block_of_position(table, b, p, BS, MB, NB);
  if (blk < 0) return;
  const long src = ((b * T + t) * KVH + kvh) * HEADDIM + c;
  const long dst = ((blk * BS + p % BS) * KVH + kvh) * HEADDIM + c;
  VSTORE(VLOAD(k + src), k_pool + dst);
  VSTORE(VLOAD(v + src), v_pool + dst);
}

__kernel __attribute__((reqd_work_group_size(DITEMS, 1, 1)))
void attn_decode(__global const float* q, ulong q_off, __global const float* k_pool, ulong k_pool_off,
                 __global const float* v_pool, ulong v_pool_off, __global const int* table, ulong table_off,
                 __global const int* lengths, ulong lengths_off, __global float* part, ulong part_off,
                 long H, long KVH, long BS, long MB, long NB, long ns, long split, float scale) {
  q += q_off; k_pool += k_pool_off; v_pool += v_pool_off; table += table_off; lengths += lengths_off;
  part += part_off;
  __local float qs[HEADDIM];  // the query, times scale
  __local float w[DTILE];     // scores, then weights, of a tile of positions
  __local long row[DTILE];    // each position's row offset in the pools, -1 where it is missing
  __local float red[DITEMS];
#if PG > 1
  __local vf osum[PG * NVD];  // the position groups' partial sums
#endif
  const long grp = get_group_id(0);
  const long sp = grp % ns, h = (grp / ns) % H, b = grp / (ns * H);
  const long kvh = h / (H / KVH), kstride = KVH * HEADDIM;
  const int lid = get_local_id(0);
  // The columns and positions this item sums v over: (col, pg) with PG > 1, else its NOWN columns.
  const int col = PG > 1 ? lid % NVD : lid, pg = PG > 1 ? lid / NVD : 0;
  const int sums = PG > 1 ? pg < PG : 1;  // items past PG * NVD take no share
  const long len = min((long)max(lengths[b], 0), MB * BS);
  const long p0 = sp * split, p1 = min(len, p0 + split);
  for (int i = lid; i < HEADDIM; i += DITEMS) qs[i] = q[(b * H + h) * HEADDIM + i] * scale;
  barrier(CLK_LOCAL_MEM_FENCE);
  float m = -FLT_MAX, l = 0.0f;
  vf o[NOWN];
  for (int j = 0; j < NOWN; ++j) o[j] = (vf)0.0f;
  for (long t0 = p0; t0 < p1; t0 += DTILE) {
    const int nt = (int)min((long)DTILE, p1 - t0);
    float mx = -FLT_MAX;
    for (int i = lid; i < nt; i += DITEMS) {
      const long blk = block_of_position(table, b, t0 + i, BS, MB, NB);
      const long r = blk >= 0 ? (blk * BS + (t0 + i) % BS) * kstride + kvh * HEADDIM : -1;
      float s = -INFINITY;
      if (r >= 0) {
        __global const float* kr = k_pool + r;
        vf dot = (vf)0.0f;
        for (int c = 0; c < NVD; ++c) dot = fma(VLOAD(qs + c * VEC), VLOAD(kr + c * VEC), dot);
        s = HSUM(dot);
      }
      w[i] = s;
      row[i] = r;
      mx = fmax(mx, s);
    }
    red[lid] = mx;
    barrier(CLK_LOCAL_MEM_FENCE);
    float m_new = m;
    for (int i = 0; i < DITEMS; ++i) m_new = fmax(m_new, red[i]);
    const float alpha = exp(m - m_new);
    float psum = 0.0f;
    for (int i = lid; i < nt; i += DITEMS) {
      const float p = exp(w[i] - m_new);  // 0 for a missing position (-inf)
      w[i] = p;
      psum += p;
    }
    l = l * alpha + psum;
    m = m_new;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int j = 0; j < NOWN; ++j) o[j] *= (vf)alpha;
    if (sums)
      for (int i = pg; i < nt; i += PG) {
        const long r = row[i];
        if (r < 0) continue;
        __global const float* vr = v_pool + r;
        const vf p = (vf)w[i];
        for (int j = 0; j < NOWN; ++j) {
          const int c = col + j * DITEMS;
          if (c < NVD) o[j] = fma(p, VLOAD(vr + c * VEC), o[j]);
        }
      }
    barrier(CLK_LOCAL_MEM_FENCE);  // w, row and red are rewritten by the next tile
  }
  red[lid] = l;  // each item's share of the sum, in a fixed order
#if PG > 1
  if (sums) osum[pg * NVD + col] = o[0];
#endif
  barrier(CLK_LOCAL_MEM_FENCE);
  float total = 0.0f;
  for (int i = 0; i < DITEMS; ++i) total += red[i];
#if PG > 1
  o[0] = osum[col];  // group 0 writes the sum of the groups (the others hold no share of it)
  for (int g = 1; g < PG; ++g) o[0] += osum[g * NVD + col];
#endif
  if (ns == 1) {  // the only split: the output itself, (B, H, HEADDIM)
    const float inv = total > 0.0f ? 1.0f / total : 0.0f;
    __global float* out = part + (b * H + h) * HEADDIM;
    for (int j = 0; j < NOWN; ++j) {
      const int c = col + j * DITEMS;
      if (c < NVD && pg == 0) VSTORE(o[j] * (vf)inv, out + c * VEC);
    }
    return;
  }
  __global float* out = part + ((b * H + h) * ns + sp) * (HEADDIM + 2);
  for (int j = 0; j < NOWN; ++j) {
    const int c = col + j * DITEMS;
    if (c < NVD && pg == 0) VSTORE(o[j], out + c * VEC);
  }
  if (lid == 0) out[HEADDIM] = m, out[HEADDIM + 1] = total;
}

// out (B, H, HEADDIM) from the splits of each row (only those holding positions, in order).
__kernel void attn_decode_combine(__global const float* part, ulong part_off, __global const int* lengths,
                                  ulong lengths_off, __global float* out, ulong out_off, long B, long H,
                                  long MB, long BS, long ns, long split) {
  part += part_off; lengths += lengths_off; out += out_off;
  const long i = get_global_id(0);
  if (i >= B * H * HEADDIM) return;
  const long c = i % HEADDIM, bh = i / HEADDIM, b = bh / H;
  const long len = min((long)max(lengths[b], 0), MB * BS);
  const long used = min(ns, (len + split - 1) / split);
  __global const float* P = part + bh * ns * (HEADDIM + 2);
  float mx = -FLT_MAX;
  for (long s = 0; s < used; ++s) mx = fmax(mx, P[s * (HEADDIM + 2) + HEADDIM]);
  float num = 0.0f, den = 0.0f;
  for (long s = 0; s < used; ++s) {
    const float wgt = exp(P[s * (HEADDIM + 2) + HEADDIM] - mx);
    num += wgt * P[s * (HEADDIM + 2) + c];
    den += wgt * P[s * (HEADDIM + 2) + HEADDIM + 1];
  }
  out[i] = den > 0.0f ? num / den : 0.0f;
}
