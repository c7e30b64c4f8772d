#include "magellano/ops/launch.hpp"

#include <algorithm>

#include "magellano/runtime/error.hpp"

namespace magellano::ops {

Launch::Launch(Context& ctx, const std::string& program, const std::string& kernel,
               const std::string& options)
    : ctx_(ctx), kernel_(ctx.kernel(program, kernel, options)), name_(kernel) {}

// Every launch passes through here: error texts are built only when a call fails.
template <typename T>
Launch& Launch::set(const T& v) {
  const cl_int st = clSetKernelArg(kernel_, index_, sizeof(T), &v);
  if (st != CL_SUCCESS) check_cl(st, "clSetKernelArg", "setting argument " + std::to_string(index_) + " of " + name_);
  ++index_;
  return *this;
}

Launch& Launch::arg(const Tensor& t) {
  cl_mem m = t.buffer();
  set(m);
  return set(static_cast<cl_ulong>(t.offset()));
}
Launch& Launch::arg(float v) { return set(v); }
Launch& Launch::arg(int32_t v) { return set(static_cast<cl_int>(v)); }
Launch& Launch::arg(uint32_t v) { return set(static_cast<cl_uint>(v)); }
Launch& Launch::arg(int64_t v) { return set(static_cast<cl_long>(v)); }

Launch& Launch::local_floats(size_t n) {
  const cl_int st = clSetKernelArg(kernel_, index_, n * sizeof(float), nullptr);
  if (st != CL_SUCCESS) check_cl(st, "clSetKernelArg", "setting local memory of " + name_);
  ++index_;
  return *this;
}

static size_t round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }

void Launch::enqueue_checked(cl_int status) const {
  if (status != CL_SUCCESS) check_cl(status, "clEnqueueNDRangeKernel", "running " + name_);
}

void Launch::run(size_t global, size_t local) {
  if (global == 0) return;
  local = std::min<size_t>(local, ctx_.device().max_work_group_size);
  size_t g = round_up(global, local);
  enqueue_checked(clEnqueueNDRangeKernel(ctx_.queue(), kernel_, 1, nullptr, &g, &local, 0, nullptr,
                                         ctx_.profiler().kernel_event(name_)));
}

void Launch::run2d(size_t gx, size_t gy, size_t lx, size_t ly) {
  if (gx == 0 || gy == 0) return;
  size_t g[2] = {round_up(gx, lx), round_up(gy, ly)};
  size_t l[2] = {lx, ly};
  enqueue_checked(clEnqueueNDRangeKernel(ctx_.queue(), kernel_, 2, nullptr, g, l, 0, nullptr,
                                         ctx_.profiler().kernel_event(name_)));
}

void Launch::run3d(const size_t global[3], const size_t local[3]) {
  if (global[0] == 0 || global[1] == 0 || global[2] == 0) return;
  enqueue_checked(clEnqueueNDRangeKernel(ctx_.queue(), kernel_, 3, nullptr, global, local, 0, nullptr,
                                         ctx_.profiler().kernel_event(name_)));
}

size_t default_local_size(const Context& ctx) {
  return std::min<size_t>(256, ctx.device().max_work_group_size);
}

int64_t pow2_local_size(const Context& ctx) {
  int64_t l = 1;
  while (l * 2 <= static_cast<int64_t>(default_local_size(ctx))) l *= 2;
  return l;
}

}  // namespace magellano::ops
