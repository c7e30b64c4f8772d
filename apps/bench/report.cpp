// How `magellano bench` prints a result (report.hpp).
#include "report.hpp"

#include <cstdio>
#include <ctime>
#include <iostream>

namespace magellano::bench {
namespace {

std::string today() {
  char buf[32];
  std::time_t t = std::time(nullptr);
  std::strftime(buf, sizeof buf, "%Y-%m-%d", std::gmtime(&t));
  return buf;
}

// Where a result ran and the peaks it is compared with: the device's, or the host's for a
// plain C++ baseline (Result::host).
struct Where {
  std::string device, driver, type;
  double copy_gbps, gemm_gflops;
  std::string copy_kind, gemm_kind;
};

Where where(const Result& r, const Context& ctx, const Peaks& peaks) {
  if (r.host) {
    static std::optional<double> blas;  // measured once, and only for a host GFLOP/s result
    if (r.gflops > 0 && !blas) blas = openblas_sgemm_gflops(peaks.peak_size, 3).value_or(0.0);
    return {host_cpu_name(), "host C++", "host", host_copy_gbps(), blas.value_or(0.0),
            "host memcpy bandwidth, 1 thread", "OpenBLAS sgemm"};
  }
  return {ctx.device().name, ctx.device().driver_version, ctx.device().type, peaks.copy_gbps,
          peaks.gemm_gflops, "copy bandwidth", "fp32 gemm"};
}

nlohmann::json to_json(const Result& r, const Where& w, const Peaks& peaks) {
  nlohmann::json j = {{"name", r.name}, {"device", w.device}, {"device_type", w.type},
                      {"driver", w.driver}, {"date", today()},
                      {"sizes", r.sizes}, {"median_s", r.median_s}, {"repeats", r.repeats}};
  if (r.gflops > 0) {
    j["gflops"] = r.gflops;
    if (w.gemm_gflops > 0) {
      j["pct_of_peak"] = 100.0 * r.gflops / w.gemm_gflops;
      j["peak"] = {{"kind", w.gemm_kind}, {"gflops", w.gemm_gflops}, {"size", peaks.peak_size}};
    } else {
      j["pct_of_peak"] = nullptr;  // no GEMM peak known for the host (no OpenBLAS)
    }
  } else if (r.gbps > 0) {
    j["gbps"] = r.gbps;
    j["pct_of_peak"] = 100.0 * r.gbps / w.copy_gbps;
    j["peak"] = {{"kind", w.copy_kind}, {"gbps", w.copy_gbps}};
  }
  if (r.tokens_per_s > 0) j["tokens_per_s"] = r.tokens_per_s;
  if (!r.extra.empty()) j["extra"] = r.extra;
  return j;
}

void print_text(const Result& r, const Where& w) {
  std::string sizes;
  for (auto& [k, v] : r.sizes.items()) sizes += (sizes.empty() ? "" : " ") + k + "=" + v.dump();
  std::printf("%-22s %-34s %10.4f ms", (r.host ? r.name + " [host]" : r.name).c_str(), sizes.c_str(),
              r.median_s * 1e3);
  if (r.gflops > 0) {
    std::printf("  %10.1f GFLOP/s", r.gflops);
    if (w.gemm_gflops > 0) std::printf("  %5.1f%% of %s", 100.0 * r.gflops / w.gemm_gflops, w.gemm_kind.c_str());
  } else if (r.gbps > 0) {
    std::printf("  %10.1f GB/s     %5.1f%% of %s", r.gbps, 100.0 * r.gbps / w.copy_gbps, w.copy_kind.c_str());
  }
  if (r.tokens_per_s > 0) std::printf("  %10.1f tokens/s", r.tokens_per_s);
  std::printf("\n");
  std::fflush(stdout);
}

}  // namespace

void print_result(const Result& r, const Context& ctx, const Peaks& peaks, bool as_json) {
  const Where w = where(r, ctx, peaks);
  if (as_json) std::cout << to_json(r, w, peaks).dump() << std::endl;
  else print_text(r, w);
}

}  // namespace magellano::bench
