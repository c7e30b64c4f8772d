// Shared by the benchmark programs: timing (median of repeats after a warm-up), the device's
// peaks measured in the same run, and small output helpers.
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/matmul.hpp"
#include "magellano/runtime/error.hpp"

namespace bench {

using magellano::Context;
using magellano::Shape;
using magellano::Tensor;

// Median wall time of `repeats` runs of f after one warm-up run; each run ends with clFinish.
template <typename F>
double median_seconds(Context& ctx, int repeats, F&& f) {
  f();
  ctx.finish();
  std::vector<double> t;
  for (int i = 0; i < repeats; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    ctx.finish();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Median wall time of a host function (no device).
template <typename F>
double median_host_seconds(int repeats, F&& f) {
  std::vector<double> t;
  for (int i = 0; i < repeats; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Copy bandwidth (read + write) through clEnqueueCopyBuffer and through a kernel; "gbps" is
// the better of the two: the device's measured peak.
inline nlohmann::json copy_bandwidth(Context& ctx, int64_t mib, int repeats) {
  mib = std::min<int64_t>(mib, ctx.device().max_alloc_bytes / (1024 * 1024) / 2);
  const int64_t n = mib * 1024 * 1024 / 4;
  Tensor src = Tensor::full(ctx, Shape{n}, 1.0f), dst = Tensor::empty(ctx, Shape{n});
  const double bytes = 2.0 * n * 4;
  const double s_copy = median_seconds(ctx, repeats, [&] { magellano::ops::copy_into(src, dst); });
  const double s_kernel = median_seconds(ctx, repeats, [&] { magellano::ops::scale_into(src, 1.0f, dst, false); });
  return {{"name", "copy"}, {"bytes_moved", bytes},
          {"copy_buffer", {{"median_s", s_copy}, {"gbps", bytes / s_copy / 1e9}}},
          {"kernel", {{"median_s", s_kernel}, {"gbps", bytes / s_kernel / 1e9}}},
          {"gbps", std::max(bytes / s_copy, bytes / s_kernel) / 1e9}};
}

// fp32 GEMM (m x k) · (k x n) through CLBlast; checks the result so a broken GEMM cannot
// report a fast time.
inline nlohmann::json gemm_rate(Context& ctx, int64_t m, int64_t n, int64_t k, int repeats) {
  Tensor a = Tensor::full(ctx, Shape{m, k}, 0.5f), b = Tensor::full(ctx, Shape{k, n}, 0.25f);
  Tensor c = Tensor::empty(ctx, Shape{m, n});
  const double s = median_seconds(ctx, repeats, [&] { magellano::ops::gemm(a, false, b, false, c); });
  float corner = 0;
  magellano::check_cl(clEnqueueReadBuffer(ctx.queue(), c.buffer(), CL_TRUE, 0, 4, &corner, 0,
                                          nullptr, nullptr), "clEnqueueReadBuffer");
  if (std::fabs(corner - 0.125f * k) > 1e-3f * k) throw magellano::Error("GEMM benchmark produced a wrong result");
  return {{"name", "gemm_f32"}, {"m", m}, {"n", n}, {"k", k}, {"median_s", s},
          {"gflops", 2.0 * m * n * k / s / 1e9}};
}

// The value after option argv[i], advancing i; exits with status 2 when it is missing.
inline std::string option_value(int argc, char** argv, int& i) {
  if (i + 1 >= argc) {
    std::fprintf(stderr, "error: %s needs a value\n", argv[i]);
    std::exit(2);
  }
  return argv[++i];
}

inline std::string today() {
  char buf[32];
  std::time_t t = std::time(nullptr);
  std::strftime(buf, sizeof buf, "%Y-%m-%d", std::gmtime(&t));
  return buf;
}

}  // namespace bench
