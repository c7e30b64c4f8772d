// The benchmark suite behind `magellano bench NAME`. Each benchmark lives in its own
// apps/bench/<name>.cpp and registers itself with the --KEY options it accepts:
//
//   static bench::RegisterBench reg{{"copy", "Copy bandwidth (read + write)",
//                                    {{"mib", Key::integer, "256", "MiB copied"}}, run_copy}};
//
// The runner (apps/bench/runner.cpp) parses the command line with Boost.ProgramOptions from the
// common options and the chosen benchmarks' keys, so an unknown key or a missing value is an
// error before anything runs, and checks each value against its key's kind. A benchmark
// receives the context, the device's peaks measured at the start of the same run (fp32 GEMM at
// --peak-size and copy bandwidth) and its options (its keys, with their defaults, and
// --repeats). It returns one or more Results; the runner adds the device, the driver and the
// percentage of the peak, and prints them as text or JSON (apps/bench/report.cpp).
//
// Results of plain C++ on the host (a benchmark's CPU baseline) set Result::host; the runner
// reports them under the host CPU's name, against the host's own single-thread copy bandwidth
// (host_copy_gbps, measured once per run when first needed).
//
// `bench all` runs every entry with its defaults; an entry that needs a config (train-step,
// generate) takes --config FILE and otherwise uses find_config("tiny.json").
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "magellano/ops/peaks.hpp"
#include "magellano/runtime/context.hpp"

namespace magellano::bench {

// The device's own peaks, measured once per `magellano bench` run.
struct Peaks {
  double copy_gbps = 0;     // best of clEnqueueCopyBuffer and a copy kernel, read + write
  double gemm_gflops = 0;   // fp32 GEMM through ops::gemm at peak_size^3
  int64_t peak_size = 4096;
};

// One --KEY option: its name (without the dashes), the kind of value it takes, its default as
// typed on the command line ("" = none: the benchmark decides, e.g. a preset config, or treats
// the key as absent) and one line of help.
struct Key {
  enum Kind { integer, number, text };
  std::string name;
  Kind kind = integer;
  std::string fallback;
  std::string help;
};

// The values of a set of keys: those given on the command line, else their defaults. Checked
// when built: an integer or number key whose value is not one throws naming the key
// ("--n must be an integer, not '12x'.").
class Options {
 public:
  Options() = default;
  // given: key -> value from the command line; entries for other keys are ignored.
  Options(const std::vector<Key>& keys, const std::map<std::string, std::string>& given);
  bool has(const std::string& key) const { return values_.count(key) != 0; }  // given or defaulted
  // The value of a key that has one (given or defaulted); throws naming the key otherwise.
  std::string str(const std::string& key) const;
  int64_t integer(const std::string& key) const;
  double number(const std::string& key) const;
  // The same for a key without a default: `fallback` when it was not given.
  std::string str(const std::string& key, const std::string& fallback) const { return has(key) ? str(key) : fallback; }
  int64_t integer(const std::string& key, int64_t fallback) const { return has(key) ? integer(key) : fallback; }
  double number(const std::string& key, double fallback) const { return has(key) ? number(key) : fallback; }

 private:
  std::map<std::string, std::string> values_;
};

// One measured figure. Set gflops or gbps (the other stays 0); pct_of_peak is computed by the
// runner from whichever is set, against Peaks. `sizes` names the problem (e.g. {"n": 4096});
// `extra` holds anything else worth keeping (secondary timings, reference implementations).
struct Result {
  std::string name;
  nlohmann::json sizes = nlohmann::json::object();
  double median_s = 0;
  int repeats = 0;
  double gflops = 0, gbps = 0;
  double tokens_per_s = 0;  // training and generation benchmarks
  bool host = false;        // plain C++ on the host CPU, not the OpenCL device (see above)
  nlohmann::json extra = nlohmann::json::object();
};

struct Bench {
  std::string name, summary;
  std::vector<Key> keys;  // accepted --KEY options besides the common ones (see runner.cpp)
  std::vector<Result> (*run)(Context& ctx, const Peaks& peaks, const Options& opts);
};

std::vector<Bench>& registry();
struct RegisterBench {
  explicit RegisterBench(Bench b) { registry().push_back(std::move(b)); }
};

// Median wall time of `repeats` runs of f after `warmup` runs; each run ends with clFinish.
using ops::median_seconds;  // magellano/ops/peaks.hpp

// Median wall time of a host function (no device), after one warm-up run.
template <typename F>
double median_host_seconds(int repeats, F&& f) {
  f();
  std::vector<double> t;
  for (int i = 0; i < std::max(repeats, 1); ++i) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// ---- the peaks (apps/bench/peaks.cpp) ----
// The measurements Peaks is made of (ops/peaks.hpp), as Results, usable by benchmarks too.
Result measure_copy(Context& ctx, int64_t mib, int repeats);
// fp32 (m x k)·(k x n) through ops::gemm; checks the result so a broken GEMM cannot report a
// fast time.
Result measure_gemm(Context& ctx, int64_t m, int64_t n, int64_t k, int repeats);

// The repetitions a benchmark should use: --repeats, else `fallback`.
// N(0, 0.02)-like values, cheaply (sum of four uniforms), for large weights (`bench nf4`, `bench int4`).
inline std::vector<float> weight_values(int64_t n, uint64_t seed) {
  std::vector<float> v(n);
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (int64_t i = 0; i < n; ++i) {
    float t = 0;
    for (int k = 0; k < 4; ++k) {
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      t += static_cast<float>(s >> 40) * (1.0f / 16777216.0f);
    }
    v[i] = (t - 2.0f) * 0.0346f;  // variance 4/12 -> std 0.02
  }
  return v;
}
int repeats_option(const Options& opts, int fallback);
// A comma-separated list of positive integers, e.g. "100,8000" (`example` goes into the error message).
std::vector<int64_t> list_option(const Options& opts, const std::string& key, const std::string& example);
// opts.integer(key), required to lie in [lo, hi] (throws naming the option).
int64_t integer_in(const Options& opts, const std::string& key, int64_t lo, int64_t hi);

// ---- the host (apps/bench/host.cpp) ----
// The host CPU's model name (/proc/cpuinfo), e.g. "AMD EPYC 7B13"; "host CPU" when unknown.
std::string host_cpu_name();
// Single-thread memcpy bandwidth of the host, read + write, GB/s; measured on the first call.
double host_copy_gbps();
// OpenBLAS SGEMM on the host's cores, C (m x n) = op(A) op(B) with op = transpose where ta / tb,
// random inputs, GFLOP/s as the median of `repeats` after a warm-up. OpenBLAS is loaded at run
// time (libopenblas.so.0), so the CLI also runs where it is absent (the GPU machine): nullopt then.
std::optional<double> openblas_sgemm_gflops(int64_t m, int64_t n, int64_t k, bool ta, bool tb,
                                           int repeats);
inline std::optional<double> openblas_sgemm_gflops(int64_t n, int repeats) {
  return openblas_sgemm_gflops(n, n, n, false, false, repeats);
}
// OpenBLAS's thread count (0 when it is not loaded).
int openblas_threads();

// A preset config by file name (e.g. "tiny.json"): configs/FILE under io::project_roots
// ($MAGELLANO_SOURCE_DIR, ./, the executable's folder and the two above it, then the source
// tree the CLI was built from, MAGELLANO_SOURCE_DIR). Throws naming the places searched.
std::filesystem::path find_config(const std::string& file);

}  // namespace magellano::bench
