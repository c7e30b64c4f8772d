// magellano bench NAME [--device D] [--json] [--repeats R] [--peak-size N] [--KEY VALUE]...
// Runs one benchmark of the suite (or `all`, or `list`s them). Every result names the device
// and driver, the sizes, the median of the timed runs after warm-up, GFLOP/s or GB/s, and that
// as a percentage of the device's own peak measured at the start of the same run.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>
#include <set>

#include "bench.hpp"
#include "command.hpp"
#include "magellano/runtime/error.hpp"

using namespace magellano;

namespace {

const char* kUsage =
    "usage: magellano bench NAME [--device D] [--json] [--repeats R] [--peak-size N] [--KEY VALUE]...\n"
    "       magellano bench list      (the benchmarks and their options)\n"
    "NAME is a benchmark or `all`. The device's peaks (copy bandwidth, fp32 GEMM at --peak-size,\n"
    "default 4096) are measured first; each result reports its share of them.\n";

std::string today() {
  char buf[32];
  std::time_t t = std::time(nullptr);
  std::strftime(buf, sizeof buf, "%Y-%m-%d", std::gmtime(&t));
  return buf;
}

std::vector<bench::Bench> sorted_registry() {
  auto all = bench::registry();
  std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.name < b.name; });
  return all;
}

nlohmann::json to_json(const bench::Result& r, const Context& ctx, const bench::Peaks& peaks) {
  nlohmann::json j = {{"name", r.name}, {"device", ctx.device().name},
                      {"driver", ctx.device().driver_version}, {"date", today()},
                      {"sizes", r.sizes}, {"median_s", r.median_s}, {"repeats", r.repeats}};
  if (r.gflops > 0) {
    j["gflops"] = r.gflops;
    j["pct_of_peak"] = 100.0 * r.gflops / peaks.gemm_gflops;
    j["peak"] = {{"kind", "fp32 gemm"}, {"gflops", peaks.gemm_gflops}, {"size", peaks.peak_size}};
  } else if (r.gbps > 0) {
    j["gbps"] = r.gbps;
    j["pct_of_peak"] = 100.0 * r.gbps / peaks.copy_gbps;
    j["peak"] = {{"kind", "copy bandwidth"}, {"gbps", peaks.copy_gbps}};
  }
  if (r.tokens_per_s > 0) j["tokens_per_s"] = r.tokens_per_s;
  if (!r.extra.empty()) j["extra"] = r.extra;
  return j;
}

void print_text(const bench::Result& r, const bench::Peaks& peaks) {
  std::string sizes;
  for (auto& [k, v] : r.sizes.items()) sizes += (sizes.empty() ? "" : " ") + k + "=" + v.dump();
  std::printf("%-22s %-34s %10.4f ms", r.name.c_str(), sizes.c_str(), r.median_s * 1e3);
  if (r.gflops > 0)
    std::printf("  %10.1f GFLOP/s  %5.1f%% of GEMM peak", r.gflops, 100.0 * r.gflops / peaks.gemm_gflops);
  else if (r.gbps > 0)
    std::printf("  %10.1f GB/s     %5.1f%% of copy peak", r.gbps, 100.0 * r.gbps / peaks.copy_gbps);
  if (r.tokens_per_s > 0) std::printf("  %10.1f tokens/s", r.tokens_per_s);
  std::printf("\n");
  std::fflush(stdout);
}

int run_bench(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    (argc < 2 ? std::cerr : std::cout) << kUsage;
    return argc < 2 ? 2 : 0;
  }
  const std::string name = argv[1];
  const auto all = sorted_registry();
  if (name == "list") {
    for (const auto& b : all) {
      std::string keys;
      for (const auto& k : b.option_keys) keys += " [--" + k + " ...]";
      std::printf("  %-12s %s%s\n", b.name.c_str(), b.summary.c_str(), keys.c_str());
    }
    return 0;
  }
  std::vector<bench::Bench> chosen;
  for (const auto& b : all)
    if (name == "all" || b.name == name) chosen.push_back(b);
  if (chosen.empty()) {
    std::cerr << "error: no benchmark named '" << name << "'. Run `magellano bench list` to see them.\n";
    return 2;
  }

  std::string device;
  bool as_json = false;
  std::map<std::string, std::string> values;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--json") { as_json = true; continue; }
    if (a.rfind("--", 0) != 0 || a.size() < 3) {
      std::cerr << "error: unexpected argument '" << a << "'. Options are --KEY VALUE pairs.\n" << kUsage;
      return 2;
    }
    if (i + 1 >= argc) {
      std::cerr << "error: " << a << " needs a value.\n";
      return 2;
    }
    if (a == "--device") device = argv[++i];
    else values[a.substr(2)] = argv[++i];
  }
  // Every option must be understood by at least one chosen benchmark.
  std::set<std::string> known = {"repeats", "peak-size", "peak-repeats", "copy-mib"};
  for (const auto& b : chosen) known.insert(b.option_keys.begin(), b.option_keys.end());
  for (const auto& [k, v] : values)
    if (!known.count(k)) {
      std::cerr << "error: unknown option --" << k << " for `bench " << name
                << "`. Run `magellano bench list` to see each benchmark's options.\n";
      return 2;
    }

  const bench::Options common(values);
  auto ctx = Context::create(device);
  bench::Peaks peaks;
  peaks.peak_size = common.integer("peak-size", 4096);
  if (peaks.peak_size < 64) throw Error("--peak-size must be at least 64.");
  const int peak_repeats = static_cast<int>(common.integer("peak-repeats", 3));
  if (!as_json)
    std::printf("device: %s (%s), driver %s\nmeasuring peaks (copy bandwidth, fp32 GEMM at %lld)...\n",
                ctx->device().name.c_str(), ctx->device().id().c_str(),
                ctx->device().driver_version.c_str(), (long long)peaks.peak_size);
  const bench::Result copy = bench::measure_copy(*ctx, common.integer("copy-mib", 256), peak_repeats);
  const bench::Result gemm = bench::measure_gemm(*ctx, peaks.peak_size, peaks.peak_size, peaks.peak_size, peak_repeats);
  peaks.copy_gbps = copy.gbps;
  peaks.gemm_gflops = gemm.gflops;
  if (!as_json)
    std::printf("peaks: copy %.1f GB/s, fp32 GEMM %.1f GFLOP/s\n\n", peaks.copy_gbps, peaks.gemm_gflops);

  for (const auto& b : chosen) {
    std::map<std::string, std::string> mine;
    for (const auto& [k, v] : values)
      if (k == "repeats" || std::count(b.option_keys.begin(), b.option_keys.end(), k)) mine[k] = v;
    for (const auto& r : b.run(*ctx, peaks, bench::Options(mine))) {
      if (as_json) std::cout << to_json(r, *ctx, peaks).dump() << std::endl;
      else print_text(r, peaks);
    }
  }
  return 0;
}

cli::RegisterCommand reg{{"bench", "Benchmark suite: copy, gemm, adamw, scan, moe, ... (bench list)", run_bench}};

}  // namespace
