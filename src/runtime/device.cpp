#include "magellano/runtime/device.hpp"

#include <CL/cl.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "magellano/runtime/error.hpp"

namespace magellano {
namespace {

std::string platform_string(cl_platform_id p, cl_platform_info what) {
  size_t n = 0;
  check_cl(clGetPlatformInfo(p, what, 0, nullptr, &n), "clGetPlatformInfo");
  std::string s(n, '\0');
  check_cl(clGetPlatformInfo(p, what, n, s.data(), nullptr), "clGetPlatformInfo");
  while (!s.empty() && (s.back() == '\0' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string device_string(cl_device_id d, cl_device_info what) {
  size_t n = 0;
  check_cl(clGetDeviceInfo(d, what, 0, nullptr, &n), "clGetDeviceInfo");
  std::string s(n, '\0');
  check_cl(clGetDeviceInfo(d, what, n, s.data(), nullptr), "clGetDeviceInfo");
  while (!s.empty() && (s.back() == '\0' || s.back() == ' ')) s.pop_back();
  return s;
}

template <typename T>
T device_value(cl_device_id d, cl_device_info what) {
  T v{};
  check_cl(clGetDeviceInfo(d, what, sizeof(T), &v, nullptr), "clGetDeviceInfo");
  return v;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

}  // namespace

bool DeviceInfo::is_pocl() const { return lower(platform_name).find("portable computing") != std::string::npos || lower(platform_name).find("pocl") != std::string::npos; }

std::string DeviceInfo::id() const {
  return std::to_string(platform_index) + ":" + std::to_string(device_index);
}

std::vector<DeviceInfo> list_devices() {
  cl_uint np = 0;
  int err = clGetPlatformIDs(0, nullptr, &np);
  if (err == -1001 /* CL_PLATFORM_NOT_FOUND_KHR */ || np == 0) return {};
  check_cl(err, "clGetPlatformIDs");
  std::vector<cl_platform_id> platforms(np);
  check_cl(clGetPlatformIDs(np, platforms.data(), nullptr), "clGetPlatformIDs");
  std::vector<DeviceInfo> out;
  for (cl_uint pi = 0; pi < np; ++pi) {
    cl_uint nd = 0;
    err = clGetDeviceIDs(platforms[pi], CL_DEVICE_TYPE_ALL, 0, nullptr, &nd);
    if (err == CL_DEVICE_NOT_FOUND || nd == 0) continue;
    check_cl(err, "clGetDeviceIDs");
    std::vector<cl_device_id> devs(nd);
    check_cl(clGetDeviceIDs(platforms[pi], CL_DEVICE_TYPE_ALL, nd, devs.data(), nullptr),
             "clGetDeviceIDs");
    for (cl_uint di = 0; di < nd; ++di) {
      cl_device_id d = devs[di];
      DeviceInfo info;
      info.platform_index = static_cast<int>(pi);
      info.device_index = static_cast<int>(di);
      info.platform_name = platform_string(platforms[pi], CL_PLATFORM_NAME);
      info.platform_version = platform_string(platforms[pi], CL_PLATFORM_VERSION);
      info.name = device_string(d, CL_DEVICE_NAME);
      info.vendor = device_string(d, CL_DEVICE_VENDOR);
      info.driver_version = device_string(d, CL_DRIVER_VERSION);
      info.opencl_version = device_string(d, CL_DEVICE_VERSION);
      info.opencl_c_version = device_string(d, CL_DEVICE_OPENCL_C_VERSION);
      auto type = device_value<cl_device_type>(d, CL_DEVICE_TYPE);
      info.type = (type & CL_DEVICE_TYPE_GPU)           ? "gpu"
                  : (type & CL_DEVICE_TYPE_CPU)         ? "cpu"
                  : (type & CL_DEVICE_TYPE_ACCELERATOR) ? "accelerator"
                                                        : "other";
      info.compute_units = device_value<cl_uint>(d, CL_DEVICE_MAX_COMPUTE_UNITS);
      info.global_mem_bytes = device_value<cl_ulong>(d, CL_DEVICE_GLOBAL_MEM_SIZE);
      info.max_alloc_bytes = device_value<cl_ulong>(d, CL_DEVICE_MAX_MEM_ALLOC_SIZE);
      info.local_mem_bytes = device_value<cl_ulong>(d, CL_DEVICE_LOCAL_MEM_SIZE);
      info.max_work_group_size = device_value<size_t>(d, CL_DEVICE_MAX_WORK_GROUP_SIZE);
      info.native_float_width = device_value<cl_uint>(d, CL_DEVICE_NATIVE_VECTOR_WIDTH_FLOAT);
      std::string ext = device_string(d, CL_DEVICE_EXTENSIONS);
      info.fp16 = ext.find("cl_khr_fp16") != std::string::npos;
      info.fp64 = ext.find("cl_khr_fp64") != std::string::npos;
      if (ext.find("cl_nv_device_attribute_query") != std::string::npos) {
        constexpr cl_device_info kMajor = 0x4000, kMinor = 0x4001;  // CL_DEVICE_COMPUTE_CAPABILITY_*_NV
        cl_uint major = 0, minor = 0;
        if (clGetDeviceInfo(d, kMajor, sizeof major, &major, nullptr) == CL_SUCCESS &&
            clGetDeviceInfo(d, kMinor, sizeof minor, &minor, nullptr) == CL_SUCCESS)
          info.nv_compute_capability = static_cast<int>(major * 10 + minor);
      }
      out.push_back(std::move(info));
    }
  }
  return out;
}

std::string format_bytes(uint64_t bytes) {
  char buf[64];
  const double b = static_cast<double>(bytes);
  if (b >= 1024.0 * 1024 * 1024) std::snprintf(buf, sizeof buf, "%.2f GiB", b / (1024.0 * 1024 * 1024));
  else if (b >= 1024.0 * 1024) std::snprintf(buf, sizeof buf, "%.1f MiB", b / (1024.0 * 1024));
  else if (b >= 1024.0) std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024.0);
  else std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  return buf;
}

std::string describe_devices(const std::vector<DeviceInfo>& devices) {
  if (devices.empty()) return "  (no OpenCL devices: install a driver such as pocl-opencl-icd)\n";
  std::string s;
  for (const auto& d : devices)
    s += "  " + d.id() + "  " + d.type + "  " + d.name + "  [" + d.platform_name + "]\n";
  return s;
}

DeviceInfo select_device(const std::string& spec_in, const std::vector<DeviceInfo>& devices) {
  if (devices.empty())
    throw Error("No OpenCL device found. Install an OpenCL driver (scripts/setup.sh installs "
                "PoCL for the CPU) and check `clinfo -l`.");
  std::string spec = spec_in;
  if (spec.empty()) {
    const char* env = std::getenv("MAGELLANO_DEVICE");
    if (env && *env) spec = env;
  }
  auto fail = [&](const std::string& why) -> DeviceInfo {
    throw Error("Device '" + spec + "' " + why + ". Available devices (use --device P:D, cpu, "
                "gpu or part of a name):\n" + describe_devices(devices));
  };
  if (spec.empty()) {
    for (const auto& d : devices)
      if (d.type == "gpu") return d;
    return devices.front();
  }
  const std::string s = lower(spec);
  // "P:D"
  auto colon = s.find(':');
  if (colon != std::string::npos && colon > 0 && colon + 1 < s.size() &&
      std::all_of(s.begin(), s.begin() + colon, ::isdigit) &&
      std::all_of(s.begin() + colon + 1, s.end(), ::isdigit)) {
    int p = std::stoi(s.substr(0, colon)), d = std::stoi(s.substr(colon + 1));
    for (const auto& dev : devices)
      if (dev.platform_index == p && dev.device_index == d) return dev;
    return fail("matches no platform:device index");
  }
  if (s == "cpu" || s == "gpu" || s == "accelerator") {
    for (const auto& dev : devices)
      if (dev.type == s) return dev;
    return fail("matches no device of that type");
  }
  for (const auto& dev : devices)
    if (lower(dev.name).find(s) != std::string::npos ||
        lower(dev.platform_name).find(s) != std::string::npos)
      return dev;
  return fail("matches no device or platform name");
}

DeviceInfo select_device(const std::string& spec) { return select_device(spec, list_devices()); }

nlohmann::json to_json(const DeviceInfo& d) {
  return {{"id", d.id()},
          {"platform", d.platform_name},
          {"platform_version", d.platform_version},
          {"name", d.name},
          {"vendor", d.vendor},
          {"type", d.type},
          {"driver_version", d.driver_version},
          {"opencl_version", d.opencl_version},
          {"opencl_c_version", d.opencl_c_version},
          {"compute_units", d.compute_units},
          {"global_mem_bytes", d.global_mem_bytes},
          {"max_alloc_bytes", d.max_alloc_bytes},
          {"local_mem_bytes", d.local_mem_bytes},
          {"max_work_group_size", d.max_work_group_size},
          {"fp16", d.fp16},
          {"fp64", d.fp64},
          {"nv_compute_capability", d.nv_compute_capability}};
}

}  // namespace magellano
