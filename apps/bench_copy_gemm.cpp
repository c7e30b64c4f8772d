// `bench copy` and `bench gemm`: the two measurements behind every percentage of peak, at
// sizes of one's choosing.
#include <sstream>

#include "bench.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::bench {
namespace {

std::vector<Result> run_copy(Context& ctx, const Peaks&, const Options& opts) {
  return {measure_copy(ctx, opts.integer("mib", 256), repeats_option(opts, 5))};
}

// --size N: one square size; default 512, 1024, 2048 and 4096.
std::vector<Result> run_gemm(Context& ctx, const Peaks&, const Options& opts) {
  std::vector<int64_t> sizes = {512, 1024, 2048, 4096};
  if (opts.has("size")) sizes = {opts.integer("size", 0)};
  std::vector<Result> out;
  for (int64_t n : sizes) {
    if (n < 1 || n > 65536) throw Error("--size must be between 1 and 65536.");
    out.push_back(measure_gemm(ctx, n, n, n, repeats_option(opts, 3)));
  }
  return out;
}

RegisterBench copy_reg{{"copy", "Copy bandwidth, read + write (GB/s)", {"mib"}, run_copy}};
RegisterBench gemm_reg{{"gemm", "fp32 GEMM, square sizes (GFLOP/s)", {"size"}, run_gemm}};

}  // namespace
}  // namespace magellano::bench
