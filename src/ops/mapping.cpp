#include "magellano/ops/mapping.hpp"

#include <atomic>
#include <cstdlib>

namespace magellano::ops {
namespace {
std::atomic<KernelMapping> g_forced{KernelMapping::automatic};
}  // namespace

KernelMapping kernel_mapping(const Context& ctx) {
  const KernelMapping forced = g_forced.load();
  if (forced != KernelMapping::automatic) return forced;
  return ctx.device().type == "cpu" ? KernelMapping::cpu : KernelMapping::gpu;
}

void force_kernel_mapping(KernelMapping mapping) { g_forced = mapping; }

int64_t cpu_group_size() {
  static const int64_t g = std::getenv("MG_G") ? std::atol(std::getenv("MG_G")) : 1;
  return g;
}

int64_t mapping_vec(const Context& ctx) { return kernel_mapping(ctx) == KernelMapping::cpu ? 16 : 1; }

int64_t vec_items(const Context& ctx, int64_t n) { return (n + mapping_vec(ctx) - 1) / mapping_vec(ctx); }

BuildOptions vec_options(const Context& ctx) { return BuildOptions().define("VEC", mapping_vec(ctx)); }

const char* to_string(KernelMapping mapping) {
  switch (mapping) {
    case KernelMapping::automatic: return "automatic";
    case KernelMapping::gpu: return "gpu";
    case KernelMapping::cpu: return "cpu";
  }
  return "?";
}

}  // namespace magellano::ops
