#include "magellano/nn/decode_path.hpp"

#include <atomic>
#include <cstdlib>
#include <string>

#include "magellano/ops/int4.hpp"

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

bool decode_linear(const Linear& l) {
  return fused_linear(l) || (plain_int4(l) && ops::decode_gemv_takes_int4_group(l.int4->group_size));
}

Tensor decode_gemv(const Linear& l, const Tensor& x, const ops::DecodeGemvParts& parts) {
  return l.storage() == WeightStorage::int4 ? ops::decode_gemv(x, *l.int4, parts) : ops::decode_gemv(x, l.weight, parts);
}

ops::DecodeGemvConvOut decode_gemv_conv(const Linear& l, const Tensor& x, const ops::DecodeGemvParts& parts,
                                        const ops::DecodeConv& conv) {
  return l.storage() == WeightStorage::int4 ? ops::decode_gemv_conv(x, *l.int4, parts, conv)
                                            : ops::decode_gemv_conv(x, l.weight, parts, conv);
}

}  // namespace magellano::nn
