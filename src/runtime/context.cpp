#include "magellano/runtime/context.hpp"

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "magellano/runtime/error.hpp"

namespace magellano {

std::shared_ptr<Context> Context::create(const std::string& device_spec) {
  return create(select_device(device_spec));
}

std::shared_ptr<Context> Context::create(const DeviceInfo& info) {
  std::shared_ptr<Context> c(new Context());
  c->info_ = info;
  cl_uint np = 0;
  check_cl(clGetPlatformIDs(0, nullptr, &np), "clGetPlatformIDs");
  std::vector<cl_platform_id> platforms(np);
  check_cl(clGetPlatformIDs(np, platforms.data(), nullptr), "clGetPlatformIDs");
  if (info.platform_index >= static_cast<int>(np))
    throw Error("Device " + info.id() + " is gone: its platform no longer exists.");
  c->platform_ = platforms[info.platform_index];
  cl_uint nd = 0;
  check_cl(clGetDeviceIDs(c->platform_, CL_DEVICE_TYPE_ALL, 0, nullptr, &nd), "clGetDeviceIDs");
  std::vector<cl_device_id> devices(nd);
  check_cl(clGetDeviceIDs(c->platform_, CL_DEVICE_TYPE_ALL, nd, devices.data(), nullptr),
           "clGetDeviceIDs");
  if (info.device_index >= static_cast<int>(nd))
    throw Error("Device " + info.id() + " is gone from its platform.");
  c->device_ = devices[info.device_index];
  int err = 0;
  c->context_ = clCreateContext(nullptr, 1, &c->device_, nullptr, nullptr, &err);
  check_cl(err, "clCreateContext", "opening " + info.name);
  const char* profile = std::getenv("MAGELLANO_PROFILE");
  const bool profiling = profile && std::string(profile) == "1";
  c->queue_ = clCreateCommandQueue(c->context_, c->device_,
                                   profiling ? CL_QUEUE_PROFILING_ENABLE : 0, &err);
  check_cl(err, "clCreateCommandQueue", "opening " + info.name);
  if (profiling) c->profiler_.enable(c->queue_);
  c->programs_ = std::make_unique<ProgramCache>(c->context_, c->device_, info);
  if (const char* env = std::getenv("MAGELLANO_BUFFER_POOL")) c->pool_enabled_ = std::string(env) != "0";
  return c;
}

Context::~Context() {
  if (queue_) clFinish(queue_);
  for (auto& [k, kern] : kernels_) clReleaseKernel(kern.kernel);
  profiler_.discard();
  pool_.release_all();
  programs_.reset();
  if (queue_) clReleaseCommandQueue(queue_);
  if (context_) clReleaseContext(context_);
}

namespace {

std::string arg_info_text(cl_kernel kernel, cl_uint i, cl_kernel_arg_info what, const std::string& where) {
  size_t n = 0;
  check_cl(clGetKernelArgInfo(kernel, i, what, 0, nullptr, &n), "clGetKernelArgInfo", where);
  std::string s(n, '\0');
  check_cl(clGetKernelArgInfo(kernel, i, what, n, s.data(), nullptr), "clGetKernelArgInfo", where);
  while (!s.empty() && s.back() == '\0') s.pop_back();
  return s;
}

// "const float *" -> "float*": the type without qualifiers or spaces (drivers differ in both).
std::string bare_type(const std::string& type) {
  std::string out, word;
  auto flush = [&] {
    if (word != "const" && word != "volatile" && word != "restrict") out += word;
    word.clear();
  };
  for (char c : type) {
    if (c == ' ' || c == '*') flush();
    if (c == '*') out += c;
    else if (c != ' ') word += c;
  }
  flush();
  return out;
}

// Every argument's name, type and address space (the program was built with -cl-kernel-arg-info).
std::vector<KernelArg> kernel_args(cl_kernel kernel, cl_uint count, const std::string& where) {
  std::vector<KernelArg> args(count);
  for (cl_uint i = 0; i < count; ++i) {
    args[i].name = arg_info_text(kernel, i, CL_KERNEL_ARG_NAME, where);
    args[i].type = bare_type(arg_info_text(kernel, i, CL_KERNEL_ARG_TYPE_NAME, where));
    check_cl(clGetKernelArgInfo(kernel, i, CL_KERNEL_ARG_ADDRESS_QUALIFIER, sizeof args[i].address,
                                &args[i].address, nullptr),
             "clGetKernelArgInfo", where);
  }
  return args;
}

}  // namespace

const CachedKernel& Context::kernel(const std::string& program, const std::string& name,
                                    const BuildOptions& options) {
  const std::string options_text =
      check_args_ ? BuildOptions(options).flag("-cl-kernel-arg-info").str() : options.str();
  std::string k = program + "\n" + options_text + "\n" + name;
  if (auto it = kernels_.find(k); it != kernels_.end()) return it->second;
  cl_program p = programs_->get(program, options_text);
  const std::string where = "kernel " + name + " from cl/" + program + ".cl";
  int err = 0;
  CachedKernel c;
  c.kernel = clCreateKernel(p, name.c_str(), &err);
  check_cl(err, "clCreateKernel", "creating " + where);
  c.program = program;
  c.name = name;
  try {
    check_cl(clGetKernelInfo(c.kernel, CL_KERNEL_NUM_ARGS, sizeof c.num_args, &c.num_args, nullptr),
             "clGetKernelInfo", "counting the arguments of " + where);
    if (check_args_) {
      c.args = kernel_args(c.kernel, c.num_args, where);
      c.typed = true;
    }
  } catch (...) {
    clReleaseKernel(c.kernel);
    throw;
  }
  return kernels_.emplace(k, std::move(c)).first->second;
}

std::shared_ptr<Storage> Context::allocate(uint64_t bytes, MemCategory category) {
  const uint64_t request = bytes == 0 ? 4 : bytes;  // OpenCL forbids empty buffers
  const std::string pocl_hint =
      info_.is_pocl() ? " On PoCL, raise the device's memory with POCL_MEMORY_LIMIT=<GB>." : "";
  if (request > info_.max_alloc_bytes)
    throw Error("Cannot allocate " + format_bytes(request) + " of " + to_string(category) +
                " on " + info_.name + ": its largest single allocation is " +
                format_bytes(info_.max_alloc_bytes) +
                ". Use a smaller batch, sequence length or model." + pocl_hint);
  const uint64_t capacity =
      pool_enabled_ ? std::min(BufferPool::capacity_for(request), info_.max_alloc_bytes) : request;
  cl_mem mem = pool_enabled_ ? pool_.take(capacity) : nullptr;
  if (!mem) {  // a cached buffer is already counted as reserved
    if (tracker_.current_reserved() + capacity > info_.global_mem_bytes && pool_.cached_bytes()) {
      tracker_.remove_reserved(pool_.cached_bytes());
      pool_.release_all();
    }
    if (tracker_.current_reserved() + capacity > info_.global_mem_bytes)
      throw Error("Cannot allocate " + format_bytes(request) + " of " + to_string(category) +
                  " on " + info_.name + ": " + format_bytes(tracker_.current_reserved()) +
                  " of its " + format_bytes(info_.global_mem_bytes) +
                  " are already in use. Use a smaller batch, sequence length or model, or "
                  "enable gradient checkpointing." + pocl_hint);
    int err = 0;
    mem = clCreateBuffer(context_, CL_MEM_READ_WRITE, capacity, nullptr, &err);
    if (err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_OUT_OF_RESOURCES) {
      tracker_.remove_reserved(pool_.cached_bytes());  // the driver disagrees: free the cache, retry
      pool_.release_all();
      mem = clCreateBuffer(context_, CL_MEM_READ_WRITE, capacity, nullptr, &err);
    }
    check_cl(err, "clCreateBuffer", "allocating " + format_bytes(request) + " of " + to_string(category));
    tracker_.add_reserved(capacity);
  }
  if (poison_) {
    const unsigned char pattern = 0xFF;
    check_cl(clEnqueueFillBuffer(queue_, mem, &pattern, 1, 0, capacity, 0, nullptr, nullptr),
             "clEnqueueFillBuffer");
  }
  return std::make_shared<Storage>(shared_from_this(), mem, request, capacity, category);
}

void Context::release_buffer(cl_mem mem, uint64_t capacity) {
  if (pool_enabled_) {
    pool_.give(mem, capacity);  // stays reserved
  } else {
    tracker_.remove_reserved(capacity);
    clReleaseMemObject(mem);
  }
}

void Context::set_buffer_pool(bool on) {
  if (!on) {
    tracker_.remove_reserved(pool_.cached_bytes());
    pool_.release_all();
  }
  pool_enabled_ = on;
}

void Context::finish() { check_cl(clFinish(queue_), "clFinish"); }

}  // namespace magellano
