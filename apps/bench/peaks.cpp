// The two measurements every result is compared with: copy bandwidth and fp32 GEMM (measured
// by ops/peaks.hpp, which the op registry's perf mode in tests/ shares).

#include "bench.hpp"
#include "magellano/ops/peaks.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::bench {

Result measure_copy(Context& ctx, int64_t mib, int repeats) {
  const ops::CopyPeak p = ops::measure_copy(ctx, mib, repeats);
  Result r;
  r.name = "copy";
  r.sizes = {{"bytes_moved", p.bytes}, {"mib", p.mib}};
  r.median_s = p.median_s;
  r.repeats = repeats;
  r.gbps = p.gbps;
  r.extra = {{"copy_buffer_gbps", p.copy_buffer_gbps}, {"copy_kernel_gbps", p.copy_kernel_gbps}};
  return r;
}

Result measure_gemm(Context& ctx, int64_t m, int64_t n, int64_t k, int repeats) {
  const ops::GemmPeak p = ops::measure_gemm(ctx, m, n, k, repeats);
  Result r;
  r.name = "gemm";
  r.sizes = {{"m", m}, {"n", n}, {"k", k}};
  r.median_s = p.median_s;
  r.repeats = repeats;
  r.gflops = p.gflops;
  return r;
}

}  // namespace magellano::bench
