// Kernel launches in one line: Launch(ctx, "elementwise", "add").arg(a).arg(n).run(n).
// A Tensor argument becomes two kernel arguments: its buffer and its element offset (ulong);
// every kernel starts with `x += x_off;` for each such pair.
//
// Kernel objects are cached and OpenCL keeps argument values between launches, so a launcher
// that sets one argument too few would silently reuse the previous launch's value: run() throws
// Error, naming the program and kernel, unless exactly the kernel's number of arguments was set,
// and setting one past the end throws at once. When the context checks kernel arguments (tests:
// Context::set_check_kernel_args), every arg() also compares its C++ type with the kernel's:
//   Tensor   -> __global T* (T: float, half, uchar, int by dtype) and ulong
//   int64_t  -> long   (every size, count, stride, offset and index)
//   bool     -> int    (a flag: acc, trans, has_bias... passed as 0 or 1)
//   int32_t  -> int    (a small value that is no size: ignore_index, Philox words)
//   uint32_t -> uint,  float -> float,  local_floats -> __local float*
#pragma once
#include <cstdint>
#include <string>

#include "magellano/runtime/build_options.hpp"
#include "magellano/tensor/tensor.hpp"

namespace magellano::ops {

class Launch {
 public:
  Launch(Context& ctx, const std::string& program, const std::string& kernel,
         const BuildOptions& options = {});
  Launch& arg(const Tensor& t);
  Launch& arg(float v);
  Launch& arg(int64_t v);
  Launch& arg(bool v);
  Launch& arg(int32_t v);
  Launch& arg(uint32_t v);
  // No pointers: they would convert to bool silently.
  template <typename T>
  Launch& arg(const T* p) = delete;
  Launch& local_floats(size_t n);  // a __local float* argument of n floats
  // global sizes are rounded up to a multiple of local; kernels check bounds.
  void run(size_t global, size_t local = 256);
  void run2d(size_t gx, size_t gy, size_t lx = 16, size_t ly = 16);
  // Exact 3-D range: each global size must be a multiple of its local size.
  void run3d(const size_t global[3], const size_t local[3]);

 private:
  // Sets the next argument: `type` and `address` are what the kernel must declare there.
  Launch& set(size_t bytes, const void* value, const char* type,
              cl_kernel_arg_address_qualifier address);
  void check_type(const char* type, cl_kernel_arg_address_qualifier address) const;
  void check_count() const;  // before enqueueing
  void enqueue_checked(cl_int status) const;
  std::string kernel_text() const;  // "kernel add (cl/elementwise.cl)"
  Context& ctx_;
  const CachedKernel& kernel_;
  cl_uint index_ = 0;
};

// Work-group size for 1-D kernels on this device (256, or less where the device demands).
size_t default_local_size(const Context& ctx);
// The largest power of two <= default_local_size: the LOCAL of the tree-reduction kernels.
int64_t pow2_local_size(const Context& ctx);

}  // namespace magellano::ops
