#include "magellano/dist/rank_device.hpp"

#include <algorithm>
#include <cstdlib>

#include "magellano/runtime/error.hpp"

namespace magellano::dist {

std::string rank_device(const std::string& spec, const Launch& launch, const std::vector<DeviceInfo>& devices) {
  if (spec.find(',') != std::string::npos) {
    std::vector<std::string> entries;
    size_t start = 0;
    for (size_t comma; (comma = spec.find(',', start)) != std::string::npos; start = comma + 1)
      entries.push_back(spec.substr(start, comma - start));
    entries.push_back(spec.substr(start));
    if (std::any_of(entries.begin(), entries.end(), [](const std::string& e) { return e.empty(); }))
      throw Error("--device '" + spec + "' has an empty entry; give one device per rank of a host, e.g. 0:0,0:1.");
    if (int(entries.size()) < launch.local_size)
      throw Error("--device '" + spec + "' names " + std::to_string(entries.size()) + " devices for the " +
                  std::to_string(launch.local_size) + " ranks on this host; give one per rank.");
    return select_device(entries[size_t(launch.local_rank)], devices).id();
  }
  if (spec == "gpu") {
    std::vector<const DeviceInfo*> gpus;
    for (const auto& d : devices)
      if (d.type == "gpu") gpus.push_back(&d);
    if (gpus.empty()) throw Error("--device gpu: this host has no OpenCL GPU.\n" + describe_devices(devices));
    return gpus[size_t(launch.local_rank) % gpus.size()]->id();
  }
  return spec;
}

unsigned limit_cpu_threads(const Launch& launch, unsigned hardware_threads) {
  if (launch.local_size <= 1) return 0;
  for (const char* name : {"POCL_MAX_PTHREAD_COUNT", "POCL_CPU_MAX_CU_COUNT"})
    if (const char* v = std::getenv(name)) return unsigned(std::strtoul(v, nullptr, 10));
  const unsigned n = std::max(1u, hardware_threads / unsigned(launch.local_size));
  const std::string value = std::to_string(n);
  for (const char* name : {"POCL_MAX_PTHREAD_COUNT", "POCL_CPU_MAX_CU_COUNT"}) ::setenv(name, value.c_str(), 0);
  return n;
}

}  // namespace magellano::dist
