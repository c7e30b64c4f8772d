// Which device each rank of a data-parallel run trains on, and how CPU ranks share the cores.
//   "gpu"              the GPUs of this host in list order; local rank r gets GPU r mod count
//   "0:0,0:1,1:0"      an explicit list: local rank r gets entry r (each entry any spec
//                      select_device() takes); fewer entries than ranks on this host: Error
//   anything else      every rank the same device, e.g. "cpu": each rank then gets its own PoCL
//                      device (each process has its own), limited by limit_cpu_threads()
#pragma once
#include <string>
#include <vector>

#include "magellano/dist/launch.hpp"
#include "magellano/runtime/device.hpp"

namespace magellano::dist {

// The device spec for this rank ("P:D" for "gpu" and lists, else `spec` itself).
std::string rank_device(const std::string& spec, const Launch& launch, const std::vector<DeviceInfo>& devices);

// With several ranks on this host, sets PoCL's thread count (POCL_MAX_PTHREAD_COUNT, read by
// PoCL 3.x's pthread device, and POCL_CPU_MAX_CU_COUNT, its name in later PoCL) to
// max(1, hardware_threads / local ranks), so the ranks do not oversubscribe the cores. A value
// the user has set is kept. Call before the first OpenCL call. Returns the count in effect
// (0: not limited).
unsigned limit_cpu_threads(const Launch& launch, unsigned hardware_threads);

}  // namespace magellano::dist
