#include "magellano/runtime/cl_event.hpp"

#include "magellano/runtime/error.hpp"

namespace magellano {
namespace {

[[noreturn]] void failed(cl_int status, const std::string& what) {
  throw Error("a device command failed (" + what + "): execution status " + cl_error_name(status) +
              ". The device may have run out of memory or been lost; see the messages above.");
}

}  // namespace

Event& Event::operator=(Event&& o) noexcept {
  if (this != &o) {
    reset();
    event_ = o.event_;
    what_ = std::move(o.what_);
    o.event_ = nullptr;
  }
  return *this;
}

bool Event::done() {
  if (!event_) return true;
  cl_int status = CL_QUEUED;
  check_cl(clGetEventInfo(event_, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof status, &status, nullptr),
           "clGetEventInfo", what_);
  if (status < 0) failed(status, what_);
  return status == CL_COMPLETE;
}

void Event::wait() {
  if (!event_) return;
  const cl_int code = clWaitForEvents(1, &event_);
  if (code == CL_SUCCESS) return;
  cl_int status = code;
  if (code == CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)
    clGetEventInfo(event_, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof status, &status, nullptr);
  failed(status, what_);
}

void Event::reset() noexcept {
  if (!event_) return;
  clWaitForEvents(1, &event_);  // (a failed command has finished too)
  clReleaseEvent(event_);
  event_ = nullptr;
}

}  // namespace magellano
