// Prepended to every program. Conventions:
// - A tensor argument is a pair (__global T* x, ulong x_off); kernels start with x += x_off.
// - Sizes, counts, strides, offsets and indices are long; int is for 0/1 flags (acc, has_bias...)
//   and small values that are no size (ignore_index). The exception: the GPU GEMMs
//   (gemm_gpu.cl, gemm_skinny.cl) take int sizes, measured faster (see gemm_gpu.cl). ops::Launch checks every launch against
//   the signature: the argument count always, the types in tests.
// - `acc` flags: when acc != 0 a kernel adds to its output, else it overwrites it and never
//   reads it (outputs may hold NaN poison).
// - Half precision is storage only: vload_half / vstore_half, arithmetic in fp32.
#define ACC_STORE(out, i, v, acc) ((out)[i] = (acc) ? (out)[i] + (v) : (v))

// The sum of v over the work-group of n work-items (n a power of two) through s[0..n): a
// fixed-shape tree, so the same inputs give the same bits. Every work-item of the group must
// call it (it has barriers); all of them get the result.
inline float group_sum(__local float* s, float v, int n) {
  const int l = get_local_id(0);
  s[l] = v;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int w = n / 2; w > 0; w >>= 1) {
    if (l < w) s[l] += s[l + w];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  const float total = s[0];
  barrier(CLK_LOCAL_MEM_FENCE);  // s may be reused right after
  return total;
}
