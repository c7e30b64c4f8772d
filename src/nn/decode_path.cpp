#include "magellano/nn/decode_path.hpp"

#include <atomic>
#include <cstdlib>
#include <string>

namespace magellano::nn {
namespace {

std::atomic<int> forced{-1};  // -1: the environment decides

}  // namespace

bool fused_decode() {
  const int f = forced.load();
  if (f >= 0) return f == 1;
  static const bool env_on = [] {
    const char* v = std::getenv("MAGELLANO_FUSED_DECODE");
    return !(v && std::string(v) == "0");
  }();
  return env_on;
}

void force_fused_decode(std::optional<bool> on) { forced = on ? (*on ? 1 : 0) : -1; }

}  // namespace magellano::nn
