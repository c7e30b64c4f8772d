// LoRA (low-rank adapters) settings, frozen-weight storage kinds, and the training-mode state
// that dropout reads.
//
// A LoRA-wrapped Linear computes   y = base(x) + (alpha / rank) · B · A · dropout(x)
//   A: (rank, in)  Kaiming-uniform with a = √5 as torch's kaiming_uniform_, i.e. U(±1/√in)
//   B: (out, rank) zeros, so a fresh adapter leaves the model's output unchanged.
// With LoRA on, every other parameter is frozen (no gradient, no optimizer state), and the
// frozen Linear weights may be stored as f32, f16 (arithmetic fp32) or NF4.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace magellano::nn {

enum class WeightStorage { f32, f16, nf4 };
const char* to_string(WeightStorage s);
WeightStorage parse_weight_storage(const std::string& s);  // "fp32" | "fp16" | "nf4"

// Target module kinds: in_proj, x_proj, dt_proj, out_proj (Mamba), gate (MoE router),
// experts (every expert's w1, w2, w3).
const std::vector<std::string>& lora_target_kinds();

struct LoRAConfig {
  int64_t rank = 0;  // 0 = LoRA off
  double alpha = 16.0;
  double dropout = 0.0;
  std::vector<std::string> targets = {"in_proj", "x_proj", "dt_proj", "out_proj"};
  bool enabled() const { return rank > 0; }
  bool targets_kind(const std::string& kind) const;
  float scaling() const { return static_cast<float>(alpha / static_cast<double>(rank)); }
};

// Dropout is active only inside a TrainingScope (the trainer's forward and backward).
bool training();
class TrainingScope {
 public:
  TrainingScope();
  ~TrainingScope();
  TrainingScope(const TrainingScope&) = delete;
  TrainingScope& operator=(const TrainingScope&) = delete;

 private:
  bool previous_;
};

// A counter mixed into every dropout seed; Model::forward advances it once per training
// forward, so each forward draws new masks while a checkpoint recompute (which sets it back
// with GenerationScope) draws the same ones.
uint64_t dropout_generation();
void advance_dropout_generation();
class GenerationScope {
 public:
  explicit GenerationScope(uint64_t generation);
  ~GenerationScope();
  GenerationScope(const GenerationScope&) = delete;
  GenerationScope& operator=(const GenerationScope&) = delete;

 private:
  uint64_t previous_;
};

}  // namespace magellano::nn
