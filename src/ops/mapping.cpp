#include "magellano/ops/mapping.hpp"

#include <atomic>

namespace magellano::ops {
namespace {
std::atomic<KernelMapping> g_forced{KernelMapping::automatic};
}  // namespace

KernelMapping kernel_mapping(const DeviceInfo& device) {
  const KernelMapping forced = g_forced.load();
  if (forced != KernelMapping::automatic) return forced;
  return device.type == "cpu" ? KernelMapping::cpu : KernelMapping::gpu;
}

KernelMapping kernel_mapping(const Context& ctx) { return kernel_mapping(ctx.device()); }

void force_kernel_mapping(KernelMapping mapping) { g_forced = mapping; }

const char* to_string(KernelMapping mapping) {
  switch (mapping) {
    case KernelMapping::automatic: return "automatic";
    case KernelMapping::gpu: return "gpu";
    case KernelMapping::cpu: return "cpu";
  }
  return "?";
}

int64_t mapping_vec(const Context& ctx) {
  return kernel_mapping(ctx) == KernelMapping::cpu ? 16 : 1;
}

int64_t vec_items(const Context& ctx, int64_t n) {
  const int64_t vec = mapping_vec(ctx);
  return (n + vec - 1) / vec;
}

BuildOptions vec_options(const Context& ctx) {
  return BuildOptions().define("VEC", mapping_vec(ctx));
}

}  // namespace magellano::ops
