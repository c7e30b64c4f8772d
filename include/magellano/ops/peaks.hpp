// The device's measured peaks, the yardsticks benchmark results are reported against (`magellano
// bench` and the op registry's perf mode in tests/): copy bandwidth and fp32 GEMM throughput,
// and the median timer every device benchmark uses.
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#include "magellano/runtime/context.hpp"

namespace magellano::ops {

// Median wall time of `repeats` runs of f after `warmup` runs; each run ends with clFinish.
template <typename F>
double median_seconds(Context& ctx, int repeats, F&& f, int warmup = 1) {
  for (int i = 0; i < warmup; ++i) f();
  ctx.finish();
  std::vector<double> t;
  for (int i = 0; i < std::max(repeats, 1); ++i) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    ctx.finish();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Copy bandwidth (read + write): `mib` MiB (at most half the largest allocation) copied by
// clEnqueueCopyBuffer and by a copy kernel; the faster counts. Checks the copied data.
struct CopyPeak {
  int64_t mib = 0;
  double bytes = 0;     // read + written by one copy
  double median_s = 0;  // of the faster way
  double gbps = 0;
  double copy_buffer_gbps = 0, copy_kernel_gbps = 0;
};
CopyPeak measure_copy(Context& ctx, int64_t mib, int repeats);

// fp32 (m x k)·(k x n) through ops::gemm; checks the result so a broken GEMM cannot report a
// fast time.
struct GemmPeak {
  int64_t m = 0, n = 0, k = 0;
  double median_s = 0;
  double gflops = 0;
};
GemmPeak measure_gemm(Context& ctx, int64_t m, int64_t n, int64_t k, int repeats);

}  // namespace magellano::ops
