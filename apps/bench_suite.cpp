// The benchmark registry, options, and the two measurements every result is compared with
// (measured by ops/peaks.hpp).
#include <cmath>

#include "bench.hpp"
#include "magellano/ops/peaks.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::bench {

std::vector<Bench>& registry() {
  static std::vector<Bench> all;
  return all;
}

std::string Options::str(const std::string& key, const std::string& fallback) const {
  auto it = values_.find(key);
  return it == values_.end() ? fallback : it->second;
}

int64_t Options::integer(const std::string& key, int64_t fallback) const {
  auto it = values_.find(key);
  if (it == values_.end()) return fallback;
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(it->second, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != it->second.size() || it->second.empty())
    throw Error("--" + key + " must be an integer, not '" + it->second + "'.");
  return v;
}

double Options::number(const std::string& key, double fallback) const {
  auto it = values_.find(key);
  if (it == values_.end()) return fallback;
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(it->second, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != it->second.size() || it->second.empty() || !std::isfinite(v))
    throw Error("--" + key + " must be a number, not '" + it->second + "'.");
  return v;
}

int repeats_option(const Options& opts, int fallback) {
  const int64_t r = opts.integer("repeats", fallback);
  if (r < 1 || r > 1000) throw Error("--repeats must be between 1 and 1000.");
  return static_cast<int>(r);
}

int64_t integer_in(const Options& opts, const std::string& key, int64_t fallback, int64_t lo, int64_t hi) {
  const int64_t v = opts.integer(key, fallback);
  if (v < lo || v > hi)
    throw Error("--" + key + " must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                ", not " + std::to_string(v) + ".");
  return v;
}

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
