#include "magellano/ops/launch.hpp"

#include <algorithm>

#include "magellano/runtime/error.hpp"

namespace magellano::ops {

namespace {

// The pointer type a kernel declares for a tensor of this dtype.
const char* pointer_type(DType d) {
  switch (d) {
    case DType::f32: return "float*";
    case DType::f16: return "half*";
    case DType::u8: return "uchar*";
    case DType::i32: return "int*";
  }
  return "?";
}

std::string with_address(const std::string& type, cl_kernel_arg_address_qualifier address) {
  switch (address) {
    case CL_KERNEL_ARG_ADDRESS_GLOBAL: return "__global " + type;
    case CL_KERNEL_ARG_ADDRESS_LOCAL: return "__local " + type;
    case CL_KERNEL_ARG_ADDRESS_CONSTANT: return "__constant " + type;
    default: return type;
  }
}

}  // namespace

Launch::Launch(Context& ctx, const std::string& program, const std::string& kernel,
               const BuildOptions& options)
    : ctx_(ctx), kernel_(ctx.kernel(program, kernel, options)) {}

std::string Launch::kernel_text() const {
  return "kernel " + kernel_.name + " (cl/" + kernel_.program + ".cl)";
}

// Every launch passes through here: error texts are built only when something fails.
Launch& Launch::set(size_t bytes, const void* value, const char* type,
                    cl_kernel_arg_address_qualifier address) {
  if (index_ >= kernel_.num_args)
    throw Error(kernel_text() + " takes " + std::to_string(kernel_.num_args) +
                " arguments, but the launcher sets argument " + std::to_string(index_) +
                " (counting from 0): its argument list is out of date with the kernel's signature.");
  if (kernel_.typed) check_type(type, address);
  const cl_int st = clSetKernelArg(kernel_.kernel, index_, bytes, value);
  if (st != CL_SUCCESS)
    check_cl(st, "clSetKernelArg", "setting argument " + std::to_string(index_) + " of " + kernel_text());
  ++index_;
  return *this;
}

void Launch::check_type(const char* type, cl_kernel_arg_address_qualifier address) const {
  const KernelArg& want = kernel_.args[index_];
  if (want.type == type && want.address == address) return;
  throw Error(kernel_text() + ", argument " + std::to_string(index_) + " '" + want.name +
              "': the kernel declares " + with_address(want.type, want.address) +
              ", the launcher passes " + with_address(type, address) + ".");
}

Launch& Launch::arg(const Tensor& t) {
  const cl_mem m = t.buffer();
  const cl_ulong offset = t.offset();
  set(sizeof m, &m, pointer_type(t.dtype()), CL_KERNEL_ARG_ADDRESS_GLOBAL);
  return set(sizeof offset, &offset, "ulong", CL_KERNEL_ARG_ADDRESS_PRIVATE);
}
Launch& Launch::arg(float v) { return set(sizeof v, &v, "float", CL_KERNEL_ARG_ADDRESS_PRIVATE); }
Launch& Launch::arg(int64_t v) {
  const cl_long x = v;
  return set(sizeof x, &x, "long", CL_KERNEL_ARG_ADDRESS_PRIVATE);
}
Launch& Launch::arg(bool v) {
  const cl_int x = v ? 1 : 0;
  return set(sizeof x, &x, "int", CL_KERNEL_ARG_ADDRESS_PRIVATE);
}
Launch& Launch::arg(int32_t v) {
  const cl_int x = v;
  return set(sizeof x, &x, "int", CL_KERNEL_ARG_ADDRESS_PRIVATE);
}
Launch& Launch::arg(uint32_t v) {
  const cl_uint x = v;
  return set(sizeof x, &x, "uint", CL_KERNEL_ARG_ADDRESS_PRIVATE);
}

Launch& Launch::local_floats(size_t n) {
  return set(n * sizeof(float), nullptr, "float*", CL_KERNEL_ARG_ADDRESS_LOCAL);
}

void Launch::check_count() const {
  if (index_ != kernel_.num_args)
    throw Error(kernel_text() + " takes " + std::to_string(kernel_.num_args) +
                " arguments, but the launcher set " + std::to_string(index_) +
                ": its argument list is out of date with the kernel's signature (OpenCL would "
                "reuse the previous launch's values for the rest).");
}

static size_t round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }

void Launch::enqueue_checked(cl_int status) const {
  if (status != CL_SUCCESS) check_cl(status, "clEnqueueNDRangeKernel", "running " + kernel_text());
}

void Launch::run(size_t global, size_t local) {
  check_count();
  if (global == 0) return;
  local = std::min<size_t>(local, ctx_.device().max_work_group_size);
  size_t g = round_up(global, local);
  enqueue_checked(clEnqueueNDRangeKernel(ctx_.queue(), kernel_.kernel, 1, nullptr, &g, &local, 0, nullptr,
                                         ctx_.profiler().kernel_event(kernel_.name)));
}

void Launch::run2d(size_t gx, size_t gy, size_t lx, size_t ly) {
  check_count();
  if (gx == 0 || gy == 0) return;
  size_t g[2] = {round_up(gx, lx), round_up(gy, ly)};
  size_t l[2] = {lx, ly};
  enqueue_checked(clEnqueueNDRangeKernel(ctx_.queue(), kernel_.kernel, 2, nullptr, g, l, 0, nullptr,
                                         ctx_.profiler().kernel_event(kernel_.name)));
}

void Launch::run3d(const size_t global[3], const size_t local[3]) {
  check_count();
  if (global[0] == 0 || global[1] == 0 || global[2] == 0) return;
  enqueue_checked(clEnqueueNDRangeKernel(ctx_.queue(), kernel_.kernel, 3, nullptr, global, local, 0, nullptr,
                                         ctx_.profiler().kernel_event(kernel_.name)));
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
