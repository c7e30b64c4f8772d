// How `magellano bench` prints a result: one text line, or one JSON object per line (--json),
// naming where it ran (the device and driver, or the host CPU for Result::host), the date, and
// its rate as a percentage of the matching peak.
#pragma once
#include "bench.hpp"

namespace magellano::bench {

void print_result(const Result& r, const Context& ctx, const Peaks& peaks, bool as_json);

}  // namespace magellano::bench
