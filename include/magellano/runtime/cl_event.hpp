// Event: owns one cl_event of an enqueued command (e.g. a non-blocking clEnqueueReadBuffer) and
// tells whether that command has finished, without blocking the host.
//   done()  polls the command's execution status: true once CL_COMPLETE; a negative status (the
//           command failed, or a command it waited for did) throws an Error naming `what` and
//           the status code's name.
//   wait()  blocks until it has finished (clWaitForEvents), with the same error.
// The destructor waits for the command (ignoring its status) before releasing the event, so a
// host buffer the command writes into may be freed right after its Event: e.g. when an Error
// unwinds a step with reads still in flight, nothing writes into freed memory.
#pragma once
#include <CL/cl.h>

#include <string>

namespace magellano {

class Event {
 public:
  Event() = default;
  Event(cl_event e, std::string what) : event_(e), what_(std::move(what)) {}  // takes ownership
  Event(Event&& o) noexcept : event_(o.event_), what_(std::move(o.what_)) { o.event_ = nullptr; }
  Event& operator=(Event&& o) noexcept;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  ~Event() { reset(); }

  bool done();  // an empty Event is done
  void wait();
  // Waits for the command (ignoring failure) and releases the event; the Event is then empty.
  void reset() noexcept;

 private:
  cl_event event_ = nullptr;
  std::string what_;  // what the command does, for the error message
};

}  // namespace magellano
