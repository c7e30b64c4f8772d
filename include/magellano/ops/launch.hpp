// Kernel launches in one line: Launch(ctx, "elementwise", "add").arg(a).arg(n).run(n).
// A Tensor argument becomes two kernel arguments: its buffer and its element offset (ulong);
// every kernel starts with `x += x_off;` for each such pair.
#pragma once
#include <cstdint>
#include <string>

#include "magellano/tensor/tensor.hpp"

namespace magellano::ops {

class Launch {
 public:
  Launch(Context& ctx, const std::string& program, const std::string& kernel,
         const std::string& options = "");
  Launch& arg(const Tensor& t);
  Launch& arg(float v);
  Launch& arg(int32_t v);
  Launch& arg(uint32_t v);  // uint in OpenCL
  Launch& arg(int64_t v);  // long in OpenCL
  Launch& local_floats(size_t n);  // a __local float* argument of n floats
  // global sizes are rounded up to a multiple of local; kernels check bounds.
  void run(size_t global, size_t local = 256);
  void run2d(size_t gx, size_t gy, size_t lx = 16, size_t ly = 16);
  // Exact 3-D range: each global size must be a multiple of its local size.
  void run3d(const size_t global[3], const size_t local[3]);

 private:
  template <typename T>
  Launch& set(const T& v);
  void enqueue_checked(cl_int status) const;
  Context& ctx_;
  cl_kernel kernel_;
  std::string name_;
  cl_uint index_ = 0;
};

// Work-group size for 1-D kernels on this device (256, or less where the device demands).
size_t default_local_size(const Context& ctx);
// The largest power of two <= default_local_size: the LOCAL of the tree-reduction kernels.
int64_t pow2_local_size(const Context& ctx);

}  // namespace magellano::ops
