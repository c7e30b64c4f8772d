// `bench copy`: the copy bandwidth behind every GB/s percentage of peak (bench.hpp's
// measure_copy: the better of clEnqueueCopyBuffer and a copy kernel), at a size of one's choosing.
#include "bench.hpp"

namespace magellano::bench {
namespace {

std::vector<Result> run_copy(Context& ctx, const Peaks&, const Options& opts) {
  return {measure_copy(ctx, opts.integer("mib"), repeats_option(opts, 5))};
}

RegisterBench reg{{"copy", "Copy bandwidth, read + write (GB/s)",
                   {{"mib", Key::integer, "256", "MiB to copy (at most half the device's largest allocation)"}},
                   run_copy}};

}  // namespace
}  // namespace magellano::bench
