// Device sort of i32 keys with their positions: a bitonic sorting network over 64-bit packed
// (key, position) words, so ties keep increasing position (a stable sort) and the result does not
// depend on scheduling. The host pads the word count to a power of two P >= 2 * SORT_LOCAL with
// ULONG_MAX (sorts last).
// Kernels:
//   sort_pack         data[i] = pack(keys[i], i) for i < n, ULONG_MAX for n <= i < P
//                     keys: (n) i32; data: (P) ulong words
//   sort_local        sorts each block of 2 * SORT_LOCAL words in local memory (every stage with
//                     k <= block), alternating directions as the global network does
//   sort_merge_local  for one stage k > block: the steps j < block of that stage in local memory
//   sort_step_global  one compare-exchange step (k, j) with j >= block, one work-item per pair
//   sort_unpack       sorted_keys[i] = key of data[i], perm[i] = position of data[i], i < n
// Knobs: SORT_LOCAL (-D, default 256): work-group size; a block is 2 * SORT_LOCAL words.
// The words live in an i32 tensor of 2P elements (`data_i32`, offset data_off in i32 elements,
// even: the host's are fresh scratch buffers at offset 0), read as ulong.
#ifndef SORT_LOCAL
#define SORT_LOCAL 256
#endif
#define SORT_BLOCK (2 * SORT_LOCAL)

// (key, pos) -> one word whose unsigned order is (signed key, pos) order.
inline ulong sort_word(int key, int pos) {
  return ((ulong)((uint)key ^ 0x80000000u) << 32) | (ulong)(uint)pos;
}

// Pair p of step (k, j): lo = 2j * (p / j) + p % j, hi = lo + j; ascending where (lo & k) == 0.
inline void cmp_swap(__global ulong* d, long lo, long hi, long k) {
  ulong a = d[lo], b = d[hi];
  bool up = (lo & k) == 0;
  if ((a > b) == up) { d[lo] = b; d[hi] = a; }
}

inline void cmp_swap_local(__local ulong* s, int lo, int hi, bool up) {
  ulong a = s[lo], b = s[hi];
  if ((a > b) == up) { s[lo] = b; s[hi] = a; }
}

__kernel void sort_pack(__global const int* keys, ulong keys_off, __global int* data_i32,
                        ulong data_off, long n, long p) {
  keys += keys_off;
  __global ulong* data = (__global ulong*)(data_i32 + data_off);
  long i = get_global_id(0);
  if (i < p) data[i] = i < n ? sort_word(keys[i], (int)i) : (ulong)0xFFFFFFFFFFFFFFFFul;
}

__kernel __attribute__((reqd_work_group_size(SORT_LOCAL, 1, 1)))
void sort_local(__global int* data_i32, ulong data_off) {
  __global ulong* data = (__global ulong*)(data_i32 + data_off);
  __local ulong s[SORT_BLOCK];
  const int l = get_local_id(0);
  const long base = (long)get_group_id(0) * SORT_BLOCK;
  s[l] = data[base + l];
  s[l + SORT_LOCAL] = data[base + l + SORT_LOCAL];
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int k = 2; k <= SORT_BLOCK; k <<= 1) {
    for (int j = k >> 1; j > 0; j >>= 1) {
      int lo = 2 * j * (l / j) + l % j;
      cmp_swap_local(s, lo, lo + j, ((base + lo) & k) == 0);
      barrier(CLK_LOCAL_MEM_FENCE);
    }
  }
  data[base + l] = s[l];
  data[base + l + SORT_LOCAL] = s[l + SORT_LOCAL];
}

__kernel __attribute__((reqd_work_group_size(SORT_LOCAL, 1, 1)))
void sort_merge_local(__global int* data_i32, ulong data_off, long k) {
  __global ulong* data = (__global ulong*)(data_i32 + data_off);
  __local ulong s[SORT_BLOCK];
  const int l = get_local_id(0);
  const long base = (long)get_group_id(0) * SORT_BLOCK;
  s[l] = data[base + l];
  s[l + SORT_LOCAL] = data[base + l + SORT_LOCAL];
  barrier(CLK_LOCAL_MEM_FENCE);
  const bool up = (base & k) == 0;  // k > block: one direction for the whole block
  for (int j = SORT_LOCAL; j > 0; j >>= 1) {
    int lo = 2 * j * (l / j) + l % j;
    cmp_swap_local(s, lo, lo + j, up);
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  data[base + l] = s[l];
  data[base + l + SORT_LOCAL] = s[l + SORT_LOCAL];
}

__kernel void sort_step_global(__global int* data_i32, ulong data_off, long p, long k, long j) {
  __global ulong* data = (__global ulong*)(data_i32 + data_off);
  long q = get_global_id(0);
  if (q >= p / 2) return;
  long lo = 2 * j * (q / j) + q % j;
  cmp_swap(data, lo, lo + j, k);
}

__kernel void sort_unpack(__global const int* data_i32, ulong data_off, __global int* sorted_keys,
                          ulong sorted_keys_off, __global int* perm, ulong perm_off, long n) {
  __global const ulong* data = (__global const ulong*)(data_i32 + data_off);
  sorted_keys += sorted_keys_off; perm += perm_off;
  long i = get_global_id(0);
  if (i >= n) return;
  ulong w = data[i];
  sorted_keys[i] = (int)((uint)(w >> 32) ^ 0x80000000u);
  perm[i] = (int)(uint)(w & 0xFFFFFFFFul);
}
