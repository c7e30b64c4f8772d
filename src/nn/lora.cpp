#include "magellano/nn/lora.hpp"

#include <algorithm>

#include "magellano/runtime/error.hpp"

namespace magellano::nn {
namespace {
thread_local bool g_training = false;
thread_local uint64_t g_generation = 0;
}  // namespace

const char* to_string(WeightStorage s) {
  switch (s) {
    case WeightStorage::f32: return "fp32";
    case WeightStorage::f16: return "fp16";
    case WeightStorage::nf4: return "nf4";
  }
  return "?";
}

WeightStorage parse_weight_storage(const std::string& s) {
  if (s == "fp32") return WeightStorage::f32;
  if (s == "fp16") return WeightStorage::f16;
  if (s == "nf4") return WeightStorage::nf4;
  throw Error("weight storage must be \"fp32\", \"fp16\" or \"nf4\", got \"" + s + "\".");
}

const std::vector<std::string>& lora_target_kinds() {
  static const std::vector<std::string> k = {"in_proj", "x_proj", "dt_proj", "out_proj", "gate", "experts"};
  return k;
}

bool LoRAConfig::targets_kind(const std::string& kind) const {
  return enabled() && std::find(targets.begin(), targets.end(), kind) != targets.end();
}

bool training() { return g_training; }
TrainingScope::TrainingScope() : previous_(g_training) { g_training = true; }
TrainingScope::~TrainingScope() { g_training = previous_; }

uint64_t dropout_generation() { return g_generation; }
void advance_dropout_generation() { ++g_generation; }
GenerationScope::GenerationScope(uint64_t g) : previous_(g_generation) { g_generation = g; }
GenerationScope::~GenerationScope() { g_generation = previous_; }

}  // namespace magellano::nn
