// Device-time profile by kernel name. On when MAGELLANO_PROFILE=1 (the queue is then created
// with profiling enabled); otherwise every call is a no-op and launches carry no event.
//
//   Launch::run records each kernel's event under its name; ops::gemm records the span of
//   CLBlast's kernels (between two markers, so padding/transpose kernels count) as "clblast_gemm".
//   report() waits for the queue, sums CL_PROFILING_COMMAND_START..END per name, releases the
//   events and starts over.
#pragma once
#include <CL/cl.h>

#include <string>
#include <utility>
#include <vector>

namespace magellano {

struct ProfileEntry {
  std::string name;
  int64_t calls = 0;
  double seconds = 0;  // device time
};

class Profiler {
 public:
  Profiler() = default;
  ~Profiler() { discard(); }
  Profiler(const Profiler&) = delete;
  Profiler& operator=(const Profiler&) = delete;

  void enable(cl_command_queue queue) { queue_ = queue; }
  bool enabled() const { return queue_ != nullptr; }

  // Where the next kernel's event goes (recorded under `name`), or nullptr when off.
  cl_event* kernel_event(const std::string& name);
  // Marks the start / end of a span of enqueued work recorded under `name` (no-ops when off).
  void span_begin();
  void span_end(const char* name);  // a literal: no string is built while profiling is off

  // Device time per name, largest first, since the last report(); waits for the queue.
  std::vector<ProfileEntry> report();
  // report() as an aligned text table with shares of the total.
  std::string report_table();
  void discard();  // drops what was recorded

 private:
  struct Pending {
    std::string name;
    cl_event begin = nullptr, end = nullptr;  // a kernel: end only
  };
  cl_command_queue queue_ = nullptr;
  std::vector<Pending> pending_;
  cl_event open_span_ = nullptr;
};

}  // namespace magellano
