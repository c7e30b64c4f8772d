// The OpenCL context of one device: queue, kernels (built once, cached in memory and on disk),
// allocation with limits, and the memory tracker. Create one with Context::create(spec).
// Destroy it (or finish() it) before the process exits, not from exit handlers (a static): PoCL
// generates kernel code on its own threads, and exit handlers tear down LLVM's state under them.
#pragma once
#include <CL/cl.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "magellano/runtime/buffer_pool.hpp"
#include "magellano/runtime/build_options.hpp"
#include "magellano/runtime/compute_dtype.hpp"
#include "magellano/runtime/device.hpp"
#include "magellano/runtime/memory.hpp"
#include "magellano/runtime/profiler.hpp"
#include "magellano/runtime/program_cache.hpp"

namespace magellano {

// One argument of a kernel as the compiler reports it (clGetKernelArgInfo).
struct KernelArg {
  std::string name;  // CL_KERNEL_ARG_NAME
  std::string type;  // CL_KERNEL_ARG_TYPE_NAME without qualifiers: "float*", "ulong", "int"...
  cl_kernel_arg_address_qualifier address = CL_KERNEL_ARG_ADDRESS_PRIVATE;  // __global, __local...
};

// A kernel built from cl/<program>.cl, with what ops::Launch checks a launch against.
struct CachedKernel {
  cl_kernel kernel = nullptr;
  std::string program, name;
  cl_uint num_args = 0;         // CL_KERNEL_NUM_ARGS
  bool typed = false;           // args known: the context checks kernel arguments
  std::vector<KernelArg> args;  // num_args entries when typed, else none
};

class Context : public std::enable_shared_from_this<Context> {
 public:
  // spec as in select_device(): "", "P:D", "cpu", "gpu" or part of a name.
  static std::shared_ptr<Context> create(const std::string& device_spec = "");
  static std::shared_ptr<Context> create(const DeviceInfo& device);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  const DeviceInfo& device() const { return info_; }
  cl_context cl() const { return context_; }
  cl_device_id cl_device() const { return device_; }
  cl_command_queue queue() const { return queue_; }
  cl_command_queue* queue_ptr() { return &queue_; }  // CLBlast wants a pointer

  // A kernel from the embedded program `program` (file name of cl/<program>.cl without .cl),
  // built with `options`. Built once per (program, options) and cached with its argument count
  // (and, when checking kernel arguments, their types); the reference stays valid.
  const CachedKernel& kernel(const std::string& program, const std::string& name,
                             const BuildOptions& options = {});
  ProgramCache& programs() { return *programs_; }

  // Allocates `bytes` on the device, tracked under `category`. Throws Error naming the sizes
  // and what to do when the request exceeds the device's largest allocation or its memory.
  // Buffers come from the pool (BufferPool) when one of the size class is cached; the pool is
  // emptied before a request that would not fit otherwise.
  std::shared_ptr<Storage> allocate(uint64_t bytes, MemCategory category);
  MemoryTracker& memory() { return tracker_; }
  // Called by ~Storage: caches the buffer in the pool, or releases it when the pool is off.
  void release_buffer(cl_mem mem, uint64_t capacity);
  // The pool is on unless MAGELLANO_BUFFER_POOL=0; turning it off empties it.
  void set_buffer_pool(bool on);
  const BufferPool& buffer_pool() const { return pool_; }

  // Tests: fill every new allocation with 0xFF bytes (NaN as f32, -1 as i32) so a kernel that
  // forgets to write an element is caught.
  void set_poison_allocations(bool on) { poison_ = on; }
  // Tests: build programs with -cl-kernel-arg-info (a separate cache entry) so that ops::Launch
  // compares every argument's C++ type with the kernel's. Off, a launch checks only the count.
  void set_check_kernel_args(bool on) { check_args_ = on; }
  bool check_kernel_args() const { return check_args_; }

  void finish();  // clFinish: waits for all queued work

  // The number type of every later ops::gemm on this context (see compute_dtype.hpp); fp32 unless
  // set (the trainer, eval and generate set train.compute_dtype).
  void set_compute_dtype(ComputeDType d) { compute_dtype_ = d; }
  ComputeDType compute_dtype() const { return compute_dtype_; }

  // Device time per kernel; on when MAGELLANO_PROFILE=1 at creation (see profiler.hpp).
  Profiler& profiler() { return profiler_; }

 private:
  Context() = default;
  DeviceInfo info_;
  cl_platform_id platform_ = nullptr;
  cl_device_id device_ = nullptr;
  cl_context context_ = nullptr;
  cl_command_queue queue_ = nullptr;
  std::unique_ptr<ProgramCache> programs_;
  std::map<std::string, CachedKernel> kernels_;
  MemoryTracker tracker_;
  Profiler profiler_;
  BufferPool pool_;  // after tracker_: destroyed first, releasing the cached buffers
  bool pool_enabled_ = true;
  bool poison_ = false;
  ComputeDType compute_dtype_ = ComputeDType::fp32;
  bool check_args_ = false;
};

}  // namespace magellano
