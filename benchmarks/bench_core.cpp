// bench_core: the device's measured peaks that every other benchmark is compared with.
//   fp32 GEMM through CLBlast at square sizes (GFLOP/s, 2*N^3 flops per product)
//   copy bandwidth (GB/s, bytes read + bytes written) by clEnqueueCopyBuffer and by a kernel
// Prints one JSON object. Usage: bench_core [--device SPEC] [--sizes 512,1024,2048,4096]
//                                           [--repeats R] [--copy-mib M]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/launch.hpp"
#include "magellano/ops/matmul.hpp"
#include "magellano/runtime/error.hpp"

using namespace magellano;
using Clock = std::chrono::steady_clock;

namespace {

// Median wall time of `repeats` runs of f after one warm-up run; each run ends with clFinish.
template <typename F>
double median_seconds(Context& ctx, int repeats, F&& f) {
  f();
  ctx.finish();
  std::vector<double> t;
  for (int i = 0; i < repeats; ++i) {
    auto t0 = Clock::now();
    f();
    ctx.finish();
    t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

nlohmann::json bench_gemm(Context& ctx, int64_t n, int repeats) {
  Tensor a = Tensor::full(ctx, Shape{n, n}, 0.5f), b = Tensor::full(ctx, Shape{n, n}, 0.25f);
  Tensor c = Tensor::empty(ctx, Shape{n, n});
  const double s = median_seconds(ctx, repeats, [&] { ops::gemm(a, false, b, false, c, 1.0f, 0.0f); });
  // Spot-check the result so a broken GEMM cannot report a fast time.
  std::vector<float> corner(1);
  check_cl(clEnqueueReadBuffer(ctx.queue(), c.buffer(), CL_TRUE, 0, 4, corner.data(), 0, nullptr, nullptr),
           "clEnqueueReadBuffer");
  if (std::abs(corner[0] - 0.125f * n) > 1e-3f * n) throw Error("GEMM benchmark produced a wrong result");
  return {{"name", "gemm_f32"}, {"m", n}, {"n", n}, {"k", n}, {"median_s", s},
          {"gflops", 2.0 * n * n * n / s / 1e9}};
}

nlohmann::json bench_copy(Context& ctx, int64_t mib, int repeats) {
  const int64_t n = mib * 1024 * 1024 / 4;
  Tensor src = Tensor::full(ctx, Shape{n}, 1.0f), dst = Tensor::empty(ctx, Shape{n});
  const double bytes = 2.0 * n * 4;  // read + write
  const double s_copy = median_seconds(ctx, repeats, [&] { ops::copy_into(src, dst); });
  const double s_kernel = median_seconds(ctx, repeats, [&] { ops::scale_into(src, 1.0f, dst, false); });
  return {{"name", "copy"}, {"bytes_moved", bytes},
          {"copy_buffer", {{"median_s", s_copy}, {"gbps", bytes / s_copy / 1e9}}},
          {"kernel", {{"median_s", s_kernel}, {"gbps", bytes / s_kernel / 1e9}}},
          {"gbps", std::max(bytes / s_copy, bytes / s_kernel) / 1e9}};
}

std::string today() {
  char buf[32];
  std::time_t t = std::time(nullptr);
  std::strftime(buf, sizeof buf, "%Y-%m-%d", std::gmtime(&t));
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  std::string device, sizes_arg = "512,1024,2048,4096";
  int repeats = 5;
  int64_t copy_mib = 256;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) { std::cerr << "error: " << a << " needs a value\n"; std::exit(2); }
      return argv[++i];
    };
    if (a == "--device") device = next();
    else if (a == "--sizes") sizes_arg = next();
    else if (a == "--repeats") repeats = std::stoi(next());
    else if (a == "--copy-mib") copy_mib = std::stoll(next());
    else {
      std::cerr << "usage: bench_core [--device SPEC] [--sizes 512,1024,...] [--repeats R] [--copy-mib M]\n";
      return 2;
    }
  }
  try {
    auto ctx = Context::create(device);
    copy_mib = std::min<int64_t>(copy_mib, ctx->device().max_alloc_bytes / (1024 * 1024) / 2);
    nlohmann::json out;
    out["date"] = today();
    out["device"] = to_json(ctx->device());
    out["clblast"] = "1.5.3 (Debian), untuned database";
    out["copy"] = bench_copy(*ctx, copy_mib, repeats);
    std::cerr << "copy: " << out["copy"]["gbps"].get<double>() << " GB/s\n";
    std::stringstream ss(sizes_arg);
    std::string tok;
    out["gemm"] = nlohmann::json::array();
    double best = 0;
    while (std::getline(ss, tok, ',')) {
      auto r = bench_gemm(*ctx, std::stoll(tok), repeats);
      best = std::max(best, r["gflops"].get<double>());
      std::cerr << "gemm " << tok << ": " << r["gflops"].get<double>() << " GFLOP/s\n";
      out["gemm"].push_back(r);
    }
    out["peak"] = {{"gemm_gflops", best}, {"copy_gbps", out["copy"]["gbps"]}};
    std::cout << out.dump(2) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
