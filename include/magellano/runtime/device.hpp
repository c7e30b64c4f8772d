// OpenCL platforms and devices: listing them and choosing one from a user's string.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace magellano {

struct DeviceInfo {
  int platform_index = 0;  // position in clGetPlatformIDs
  int device_index = 0;    // position within its platform
  std::string platform_name;
  std::string platform_version;
  std::string name;
  std::string vendor;
  std::string driver_version;
  std::string opencl_version;    // CL_DEVICE_VERSION
  std::string opencl_c_version;  // CL_DEVICE_OPENCL_C_VERSION
  std::string type;              // "cpu", "gpu", "accelerator" or "other"
  uint32_t compute_units = 0;
  uint64_t global_mem_bytes = 0;
  uint64_t max_alloc_bytes = 0;
  uint64_t local_mem_bytes = 0;
  uint64_t max_work_group_size = 0;
  uint32_t native_float_width = 1;  // CL_DEVICE_NATIVE_VECTOR_WIDTH_FLOAT (16 with AVX-512 on PoCL)
  bool fp16 = false;  // cl_khr_fp16 (arithmetic); storage-only half works everywhere
  bool fp64 = false;  // cl_khr_fp64
  // NVIDIA compute capability as major * 10 + minor (cl_nv_device_attribute_query), 0 elsewhere:
  // 80 and above have the tensor-core instructions ops::gemm's matrix-engine path issues.
  int nv_compute_capability = 0;
  bool is_pocl() const;
  std::string id() const;  // "P:D"
};

// Every device of every platform, in platform then device order. Empty when there is none.
std::vector<DeviceInfo> list_devices();

// Chooses a device. spec: "" (MAGELLANO_DEVICE, else the first GPU, else the first device),
// "P:D" indices, "cpu", "gpu", or a case-insensitive substring of the platform or device name.
// Throws Error listing the available devices when nothing matches.
DeviceInfo select_device(const std::string& spec, const std::vector<DeviceInfo>& devices);
DeviceInfo select_device(const std::string& spec = "");

nlohmann::json to_json(const DeviceInfo& d);
std::string describe_devices(const std::vector<DeviceInfo>& devices);  // one line each
std::string format_bytes(uint64_t bytes);  // "3.53 GiB"

}  // namespace magellano
