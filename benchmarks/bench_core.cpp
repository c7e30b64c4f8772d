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

#include "bench_util.hpp"
#if MAGELLANO_HAVE_OPENBLAS
#include <cblas.h>
#endif

using namespace magellano;

#if MAGELLANO_HAVE_OPENBLAS
// OpenBLAS SGEMM on the host's cores: the reference a CPU device's GEMM is compared with.
static nlohmann::json openblas_gemm(int64_t n, int repeats) {
  std::vector<float> a(n * n, 0.5f), b(n * n, 0.25f), c(n * n);
  auto run = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n,
                0.0f, c.data(), n);
  };
  run();
  const double s = bench::median_host_seconds(repeats, run);
  return {{"name", "openblas_sgemm"}, {"n", n}, {"threads", openblas_get_num_threads()},
          {"median_s", s}, {"gflops", 2.0 * n * n * n / s / 1e9}};
}
#endif


int main(int argc, char** argv) {
  std::string device, sizes_arg = "512,1024,2048,4096";
  int repeats = 5;
  int64_t copy_mib = 256;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return bench::option_value(argc, argv, i); };
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
    nlohmann::json out;
    out["date"] = bench::today();
    out["device"] = to_json(ctx->device());
    out["clblast"] = "1.5.3 (Debian), untuned database";
    out["copy"] = bench::copy_bandwidth(*ctx, copy_mib, repeats);
    std::cerr << "copy: " << out["copy"]["gbps"].get<double>() << " GB/s\n";
    std::stringstream ss(sizes_arg);
    std::string tok;
    out["gemm"] = nlohmann::json::array();
    double best = 0;
    while (std::getline(ss, tok, ',')) {
      const int64_t n = std::stoll(tok);
      auto r = bench::gemm_rate(*ctx, n, n, n, repeats);
      best = std::max(best, r["gflops"].get<double>());
      std::cerr << "gemm " << tok << ": " << r["gflops"].get<double>() << " GFLOP/s\n";
      out["gemm"].push_back(r);
    }
    out["peak"] = {{"gemm_gflops", best}, {"copy_gbps", out["copy"]["gbps"]}};
#if MAGELLANO_HAVE_OPENBLAS
    if (ctx->device().type == "cpu") {
      out["openblas"] = nlohmann::json::array();
      std::stringstream sizes(sizes_arg);
      while (std::getline(sizes, tok, ',')) {
        auto r = openblas_gemm(std::stoll(tok), repeats);
        std::cerr << "openblas " << tok << ": " << r["gflops"].get<double>() << " GFLOP/s\n";
        out["openblas"].push_back(r);
      }
    }
#endif
    std::cout << out.dump(2) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
