// fp32 GEMM for products with one narrow side, on GPUs: LoRA's rank-r factors (x·Aᵀ, t·Bᵀ and
// their gradients) and the MoE router. C (M, N) = alpha * A·B + beta * C with N at most a few
// tiles of TN; the host transposes the problem so that N is the narrow side when M is.
// Every operand is addressed through (row stride, column stride), which covers transposes:
//   A(i, p) = a[i * a_rs + p * a_cs]   B(p, j) = b[p * b_rs + j * b_cs]
//   C(i, j) = c[i * c_rs + j * c_cs]
// Kernels:
//   gemm_skinny:        one work-group of 256 computes a TM x TN tile of C over the K range
//                       of its split (group id 1): A and B tiles of TK columns / rows pass
//                       through local memory; work-item (r, g) owns row r and the 4 columns
//                       4g..4g+3. With one split it writes C; with several, each split writes
//                       its partial tile to w (split, M, N) and gemm_skinny_reduce finishes.
//   gemm_skinny_reduce: C = alpha * sum over splits of w + beta * C, one work-item per element.
// beta == 0 never reads C (it may hold NaN poison). No early return before a barrier (PoCL 3.1
// miscompiles that).
// Sizes and strides are int, as in cl/gemm_gpu.cl (the exception to cl/common.cl's `long`,
// measured there); the host checks that each fits (detail::require_int_sizes).
#define TM 64
#define TN 16
#define TK 16

__kernel __attribute__((reqd_work_group_size(256, 1, 1)))
void gemm_skinny(__global const float* a, ulong a_off, int a_rs, int a_cs,
                 __global const float* b, ulong b_off, int b_rs, int b_cs,
                 __global float* c, ulong c_off, int c_rs, int c_cs,
                 __global float* w, ulong w_off, int m, int n, int k, int k_per_split,
                 float alpha, float beta) {
  a += a_off;
  b += b_off;
  c += c_off;
  w += w_off;
  __local float as[TK][TM + 1];  // as[p][r] = A(i0 + r, k0 + p)
  __local float bs[TK][TN];      // bs[p][j] = B(k0 + p, j0 + j)
  const int tiles_m = (m + TM - 1) / TM;
  const int i0 = (get_group_id(0) % tiles_m) * TM, j0 = (get_group_id(0) / tiles_m) * TN;
  const int split = get_group_id(1), splits = get_num_groups(1);
  const int k_begin = split * k_per_split, k_end = min(k, k_begin + k_per_split);
  const int lid = get_local_id(0), r = lid % TM, g = lid / TM;
  float acc0 = 0.0f, acc1 = 0.0f, acc2 = 0.0f, acc3 = 0.0f;
  for (int k0 = k_begin; k0 < k_end; k0 += TK) {
    // Loads in the order that makes neighbouring work-items read neighbouring addresses.
    for (int e = lid; e < TM * TK; e += 256) {
      const int rr = a_cs == 1 ? e / TK : e % TM, pp = a_cs == 1 ? e % TK : e / TM;
      const int i = i0 + rr, p = k0 + pp;
      as[pp][rr] = i < m && p < k_end ? a[(long)i * a_rs + (long)p * a_cs] : 0.0f;
    }
    {
      const int jj = b_cs == 1 ? lid % TN : lid / TK, pp = b_cs == 1 ? lid / TN : lid % TK;
      const int j = j0 + jj, p = k0 + pp;
      bs[pp][jj] = j < n && p < k_end ? b[(long)p * b_rs + (long)j * b_cs] : 0.0f;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int p = 0; p < TK; ++p) {
      const float x = as[p][r];
      acc0 = fma(x, bs[p][4 * g + 0], acc0);
      acc1 = fma(x, bs[p][4 * g + 1], acc1);
      acc2 = fma(x, bs[p][4 * g + 2], acc2);
      acc3 = fma(x, bs[p][4 * g + 3], acc3);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  const int i = i0 + r;
  const float acc[4] = {acc0, acc1, acc2, acc3};
  for (int q = 0; q < 4; ++q) {
    const int j = j0 + 4 * g + q;
    if (i < m && j < n) {
      if (splits > 1) {
        w[((long)split * m + i) * n + j] = acc[q];
      } else {
        __global float* out = c + (long)i * c_rs + (long)j * c_cs;
        *out = beta == 0.0f ? alpha * acc[q] : alpha * acc[q] + beta * *out;
      }
    }
  }
}

__kernel void gemm_skinny_reduce(__global const float* w, ulong w_off, int splits, int m, int n,
                                 __global float* c, ulong c_off, int c_rs, int c_cs, float alpha,
                                 float beta) {
  w += w_off;
  c += c_off;
  const long e = get_global_id(0);
  if (e >= (long)m * n) return;
  float s = 0.0f;
  for (int q = 0; q < splits; ++q) s += w[(long)q * m * n + e];
  __global float* out = c + (e / n) * c_rs + (e % n) * c_cs;
  *out = beta == 0.0f ? alpha * s : alpha * s + beta * *out;
}
