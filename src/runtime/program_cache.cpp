#include "magellano/runtime/program_cache.hpp"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include <unistd.h>

#include "magellano/runtime/device.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano {

const std::map<std::string, std::string>& embedded_kernel_sources();  // generated at build time

namespace fs = std::filesystem;
namespace {

constexpr char kMagic[8] = {'M', 'G', 'K', 'C', 'A', 'C', 'H', '1'};
constexpr const char* kBaseOptions = "-cl-std=CL1.2";

std::string default_folder() {
  if (const char* d = std::getenv("MAGELLANO_CACHE_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x)
    return std::string(x) + "/magellano/kernels";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/magellano/kernels";
  return (fs::temp_directory_path() / "magellano-kernels").string();
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw Error("Cannot read kernel source " + p.string() + ": check MAGELLANO_CL_DIR.");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string build_log(cl_program program, cl_device_id device) {
  size_t n = 0;
  clGetProgramBuildInfo(program, device, CL_PROGRAM_BUILD_LOG, 0, nullptr, &n);
  std::string log(n, '\0');
  clGetProgramBuildInfo(program, device, CL_PROGRAM_BUILD_LOG, n, log.data(), nullptr);
  while (!log.empty() && (log.back() == '\0' || log.back() == '\n')) log.pop_back();
  return log;
}

// Whether the kernels of a program built with -cl-kernel-arg-info report their argument types.
// OpenCL promises that only for programs built from source: a driver may drop the information
// from binaries (PoCL keeps it).
bool keeps_arg_info(cl_program program) {
  cl_uint n = 0;
  if (clCreateKernelsInProgram(program, 0, nullptr, &n) != CL_SUCCESS || n == 0) return true;
  std::vector<cl_kernel> kernels(n);
  if (clCreateKernelsInProgram(program, n, kernels.data(), nullptr) != CL_SUCCESS) return true;
  bool keeps = true;
  for (cl_kernel k : kernels) {
    cl_uint args = 0;
    size_t size = 0;
    if (clGetKernelInfo(k, CL_KERNEL_NUM_ARGS, sizeof args, &args, nullptr) == CL_SUCCESS && args > 0)
      keeps = keeps && clGetKernelArgInfo(k, 0, CL_KERNEL_ARG_TYPE_NAME, 0, nullptr, &size) == CL_SUCCESS;
    clReleaseKernel(k);
  }
  return keeps;
}

}  // namespace

uint64_t fnv1a64(const void* data, size_t n, uint64_t h) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ULL;
  }
  return h;
}

ProgramCache::ProgramCache(cl_context ctx, cl_device_id device, const DeviceInfo& info)
    : ctx_(ctx), device_(device), folder_(default_folder()) {
  device_key_ = info.platform_name + "|" + info.name + "|" + info.driver_version + "|" +
                info.opencl_version;
}

ProgramCache::~ProgramCache() {
  for (auto& [k, p] : programs_) clReleaseProgram(p);
}

std::string ProgramCache::source_of(const std::string& name) {
  auto load = [](const std::string& n) -> std::string {
    if (const char* dir = std::getenv("MAGELLANO_CL_DIR"); dir && *dir)
      return read_file(fs::path(dir) / (n + ".cl"));
    const auto& all = embedded_kernel_sources();
    auto it = all.find(n);
    if (it == all.end()) throw Error("No kernel program named '" + n + "' is embedded in this build.");
    return it->second;
  };
  // Every program starts with cl/common.cl (offset macros, shared helpers).
  if (name == "common") return load(name);
  return load("common") + "\n#line 1\n" + load(name);
}

std::string ProgramCache::key(const std::string& name, const std::string& options,
                              const std::string& source) const {
  return device_key_ + "|" + name + "|" + options + "|" +
         hex64(fnv1a64(source.data(), source.size()));
}

std::string ProgramCache::entry_path(const std::string& name, const std::string& options) const {
  std::string k = key(name, options, source_of(name));
  return (fs::path(folder_) / (name + "-" + hex64(fnv1a64(k.data(), k.size())) + ".bin")).string();
}

cl_program ProgramCache::get(const std::string& name, const std::string& kernel_options) {
  // MAGELLANO_CL_OPTIONS: extra build options for every program (e.g. -cl-nv-verbose), part of
  // the cache key like the kernel's own.
  std::string options = kernel_options;
  if (const char* extra = std::getenv("MAGELLANO_CL_OPTIONS"); extra && *extra)
    options += std::string(options.empty() ? "" : " ") + extra;
  std::string mem_key = name + "\n" + options;
  if (auto it = programs_.find(mem_key); it != programs_.end()) {
    last_source_ = Source::none;
    return it->second;
  }
  cl_program p = build(name, options);
  programs_[mem_key] = p;
  return p;
}

cl_program ProgramCache::build(const std::string& name, const std::string& options) {
  const std::string source = source_of(name);
  const std::string k = key(name, options, source);
  const std::string path = entry_path(name, options);
  const std::string full_options = std::string(kBaseOptions) + " " + options;
  if (cl_program p = from_disk(path, k, full_options)) {
    if (options.find("-cl-kernel-arg-info") == std::string::npos || keeps_arg_info(p)) {
      last_source_ = Source::disk;
      return p;
    }
    clReleaseProgram(p);  // the binary lost the argument types: compile the source
  }
  const char* src = source.c_str();
  size_t len = source.size();
  int err = 0;
  cl_program program = clCreateProgramWithSource(ctx_, 1, &src, &len, &err);
  check_cl(err, "clCreateProgramWithSource", "loading kernel program " + name);
  err = clBuildProgram(program, 1, &device_, full_options.c_str(), nullptr, nullptr);
  if (err != CL_SUCCESS) {
    std::string log = build_log(program, device_);
    clReleaseProgram(program);
    throw Error("clBuildProgram failed for cl/" + name + ".cl (options '" + options +
                "'): " + cl_error_name(err) + ". Build log:\n" + log);
  }
  last_source_ = Source::compiled;
  if (const char* show = std::getenv("MAGELLANO_CL_BUILD_LOG"); show && std::string(show) == "1") {
    const std::string log = build_log(program, device_);
    if (log.find_first_not_of(" \n\r\t") != std::string::npos)
      std::fprintf(stderr, "build log of cl/%s.cl (%s):\n%s\n", name.c_str(), full_options.c_str(), log.c_str());
  }
  try {
    to_disk(path, k, program);
  } catch (const std::exception&) {
    // An unwritable cache folder costs time, not correctness: carry on without it.
  }
  return program;
}

// Entry layout: magic[8] | u64 key_len | key | u64 bin_len | binary | u64 fnv1a64(binary)
cl_program ProgramCache::from_disk(const std::string& path, const std::string& k,
                                   const std::string& options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return nullptr;
  char magic[8];
  uint64_t key_len = 0, bin_len = 0, sum = 0;
  if (!in.read(magic, 8) || std::string(magic, 8) != std::string(kMagic, 8)) return nullptr;
  if (!in.read(reinterpret_cast<char*>(&key_len), 8) || key_len != k.size()) return nullptr;
  std::string stored_key(key_len, '\0');
  if (!in.read(stored_key.data(), key_len) || stored_key != k) return nullptr;
  if (!in.read(reinterpret_cast<char*>(&bin_len), 8) || bin_len == 0 || bin_len > (1ULL << 31))
    return nullptr;
  std::vector<unsigned char> bin(bin_len);
  if (!in.read(reinterpret_cast<char*>(bin.data()), bin_len)) return nullptr;
  if (!in.read(reinterpret_cast<char*>(&sum), 8) || sum != fnv1a64(bin.data(), bin.size()))
    return nullptr;
  const unsigned char* ptr = bin.data();
  size_t len = bin.size();
  cl_int status = 0, err = 0;
  cl_program program = clCreateProgramWithBinary(ctx_, 1, &device_, &len, &ptr, &status, &err);
  if (err != CL_SUCCESS || status != CL_SUCCESS) {
    if (program) clReleaseProgram(program);
    return nullptr;
  }
  if (clBuildProgram(program, 1, &device_, options.c_str(), nullptr, nullptr) != CL_SUCCESS) {
    clReleaseProgram(program);
    return nullptr;
  }
  return program;
}

void ProgramCache::to_disk(const std::string& path, const std::string& k, cl_program program) {
  size_t bin_len = 0;
  check_cl(clGetProgramInfo(program, CL_PROGRAM_BINARY_SIZES, sizeof bin_len, &bin_len, nullptr),
           "clGetProgramInfo");
  if (bin_len == 0) return;
  std::vector<unsigned char> bin(bin_len);
  unsigned char* ptr = bin.data();
  check_cl(clGetProgramInfo(program, CL_PROGRAM_BINARIES, sizeof ptr, &ptr, nullptr),
           "clGetProgramInfo");
  fs::create_directories(fs::path(path).parent_path());
  // Write to a unique temp file, then rename: readers never see half an entry.
  std::string tmp = path + ".tmp" + std::to_string(std::rand()) + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    uint64_t key_len = k.size(), n = bin.size(), sum = fnv1a64(bin.data(), bin.size());
    out.write(kMagic, 8);
    out.write(reinterpret_cast<const char*>(&key_len), 8);
    out.write(k.data(), k.size());
    out.write(reinterpret_cast<const char*>(&n), 8);
    out.write(reinterpret_cast<const char*>(bin.data()), n);
    out.write(reinterpret_cast<const char*>(&sum), 8);
    if (!out) {
      fs::remove(tmp);
      return;
    }
  }
  fs::rename(tmp, path);
}

}  // namespace magellano
