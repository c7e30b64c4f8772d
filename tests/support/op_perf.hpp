// Perf mode of the op registry (tests/ops/op_cases.cpp runs it when MAGELLANO_TEST_PERF=1):
// measures the device's copy bandwidth and fp32 GEMM peak once (ops/peaks.hpp, as
// `magellano bench` does), then times every registered op's perf case, forward alone (under
// NoGradScope) and forward + backward (every differentiable input's gradient, zeroed before
// each run so the backward writes rather than adds): one run to compile kernels and fill the
// buffer pool, one to pick the repeats (enough for ~0.5 s, 5 to 50), then the median of those
// runs, each ending with clFinish. No reference runs; allocation poisoning (test_ctx's NaN fill)
// is off while timing.
//
// Each result is reported against the peak its cost model says bounds it (a roofline): GB/s
// against the copy bandwidth when bytes / copy peak >= FLOPs / GEMM peak, else GFLOP/s
// against the fp32 GEMM peak. One table row per op goes to `table`; one JSON line per result
// (the fields of `magellano bench --json`: name, device, device_type, driver, date, sizes,
// median_s, repeats, gbps or gflops, pct_of_peak, peak, extra) to `json` when given.
// `only`: op names to time (empty: every registered op). With MAGELLANO_PROFILE=1, each op's
// row is followed by the device time per kernel of one more forward + backward.
#pragma once
#include <ostream>
#include <set>
#include <string>

#include "magellano/runtime/context.hpp"

namespace mgtest {

void run_op_perf(magellano::Context& ctx, std::ostream& table, std::ostream* json,
                 const std::set<std::string>& only = {});

}  // namespace mgtest
