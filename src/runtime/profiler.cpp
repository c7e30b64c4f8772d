#include "magellano/runtime/profiler.hpp"

#include <algorithm>
#include <cstdio>
#include <map>

#include "magellano/runtime/error.hpp"

namespace magellano {

namespace {
cl_ulong profiling_time(cl_event e, cl_profiling_info what) {
  cl_ulong t = 0;
  check_cl(clGetEventProfilingInfo(e, what, sizeof t, &t, nullptr), "clGetEventProfilingInfo");
  return t;
}
}  // namespace

cl_event* Profiler::kernel_event(const std::string& name) {
  if (!enabled()) return nullptr;
  pending_.push_back({name, nullptr, nullptr});
  return &pending_.back().end;
}

void Profiler::span_begin() {
  if (!enabled()) return;
  if (open_span_) clReleaseEvent(open_span_);
  check_cl(clEnqueueMarkerWithWaitList(queue_, 0, nullptr, &open_span_), "clEnqueueMarkerWithWaitList");
}

void Profiler::span_end(const char* name) {
  if (!enabled() || !open_span_) return;
  Pending p{name, open_span_, nullptr};
  open_span_ = nullptr;
  check_cl(clEnqueueMarkerWithWaitList(queue_, 0, nullptr, &p.end), "clEnqueueMarkerWithWaitList");
  pending_.push_back(p);
}

std::vector<ProfileEntry> Profiler::report() {
  std::vector<ProfileEntry> out;
  if (!enabled()) return out;
  check_cl(clFinish(queue_), "clFinish");
  std::map<std::string, ProfileEntry> by_name;
  for (const auto& p : pending_) {
    if (!p.end) continue;  // the enqueue failed
    const cl_ulong stop = profiling_time(p.end, CL_PROFILING_COMMAND_END);
    const cl_ulong start = p.begin ? profiling_time(p.begin, CL_PROFILING_COMMAND_END)
                                   : profiling_time(p.end, CL_PROFILING_COMMAND_START);
    auto& e = by_name[p.name];
    e.name = p.name;
    e.calls += 1;
    e.seconds += stop > start ? double(stop - start) * 1e-9 : 0.0;
  }
  discard();
  for (auto& [name, e] : by_name) out.push_back(e);
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.seconds > b.seconds; });
  return out;
}

std::string Profiler::report_table() {
  const auto entries = report();
  double total = 0;
  for (const auto& e : entries) total += e.seconds;
  std::string s;
  char line[160];
  std::snprintf(line, sizeof line, "%-32s %8s %12s %7s\n", "kernel", "calls", "device ms", "share");
  s += line;
  for (const auto& e : entries) {
    std::snprintf(line, sizeof line, "%-32s %8lld %12.3f %6.1f%%\n", e.name.c_str(), (long long)e.calls,
                  e.seconds * 1e3, total > 0 ? 100.0 * e.seconds / total : 0.0);
    s += line;
  }
  std::snprintf(line, sizeof line, "%-32s %8s %12.3f\n", "total", "", total * 1e3);
  return s + line;
}

void Profiler::discard() {
  for (auto& p : pending_) {
    if (p.begin) clReleaseEvent(p.begin);
    if (p.end) clReleaseEvent(p.end);
  }
  pending_.clear();
  if (open_span_) clReleaseEvent(open_span_);
  open_span_ = nullptr;
}

}  // namespace magellano
