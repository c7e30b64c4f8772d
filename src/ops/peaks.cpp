#include "magellano/ops/peaks.hpp"

#include <cmath>

#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/matmul.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::ops {

CopyPeak measure_copy(Context& ctx, int64_t mib, int repeats) {
  mib = std::max<int64_t>(1, std::min<int64_t>(mib, ctx.device().max_alloc_bytes / (1 << 20) / 2));
  const int64_t n = mib * (1 << 20) / 4;
  Tensor src = Tensor::full(ctx, Shape{n}, 1.0f), dst = Tensor::empty(ctx, Shape{n});
  const double bytes = 2.0 * n * 4;
  const double s_copy = median_seconds(ctx, repeats, [&] { copy_into(src, dst); });
  const double s_kernel = median_seconds(ctx, repeats, [&] { scale_into(src, 1.0f, dst, false); });
  if (dst.to_host()[n - 1] != 1.0f) throw Error("copy benchmark produced a wrong result");
  CopyPeak p;
  p.mib = mib;
  p.bytes = bytes;
  p.median_s = std::min(s_copy, s_kernel);
  p.gbps = bytes / p.median_s / 1e9;
  p.copy_buffer_gbps = bytes / s_copy / 1e9;
  p.copy_kernel_gbps = bytes / s_kernel / 1e9;
  return p;
}

GemmPeak measure_gemm(Context& ctx, int64_t m, int64_t n, int64_t k, int repeats) {
  Tensor a = Tensor::full(ctx, Shape{m, k}, 0.5f), b = Tensor::full(ctx, Shape{k, n}, 0.25f);
  Tensor c = Tensor::empty(ctx, Shape{m, n});
  const double s = median_seconds(ctx, repeats, [&] { gemm(a, false, b, false, c); });
  const std::vector<float> host = c.to_host();
  for (size_t i : {size_t(0), host.size() / 2, host.size() - 1})
    if (std::fabs(host[i] - 0.125f * k) > 1e-3f * k) throw Error("GEMM benchmark produced a wrong result");
  return {m, n, k, s, 2.0 * m * n * k / s / 1e9};
}

}  // namespace magellano::ops
