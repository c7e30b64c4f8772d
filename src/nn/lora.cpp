#include "magellano/nn/lora.hpp"

#include <algorithm>

#include "magellano/runtime/error.hpp"

namespace magellano::nn {
const char* to_string(WeightStorage s) {
  switch (s) {
    case WeightStorage::f32: return "fp32";
    case WeightStorage::f16: return "fp16";
    case WeightStorage::nf4: return "nf4";
    case WeightStorage::int4: return "int4";
  }
  return "?";
}

WeightStorage parse_weight_storage(const std::string& s) {
  if (s == "fp32") return WeightStorage::f32;
  if (s == "fp16") return WeightStorage::f16;
  if (s == "nf4") return WeightStorage::nf4;
  if (s == "int4") return WeightStorage::int4;
  throw Error("weight storage must be \"fp32\", \"fp16\", \"nf4\" or \"int4\", got \"" + s + "\".");
}

const std::vector<std::string>& lora_target_kinds() {
  static const std::vector<std::string> k = {"in_proj", "x_proj", "dt_proj", "out_proj", "q_proj",        "k_proj",
                                               "v_proj",  "o_proj", "gate",    "experts",  "shared_expert", "mlp"};
  return k;
}

bool LoRAConfig::targets_kind(const std::string& kind) const {
  return enabled() && std::find(targets.begin(), targets.end(), kind) != targets.end();
}

}  // namespace magellano::nn
