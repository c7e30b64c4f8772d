// LoRA (low-rank adapters) settings and frozen-weight storage kinds.
//
// A LoRA-wrapped Linear computes   y = base(x) + (alpha / rank) · B · A · dropout(x)
//   A: (rank, in)  Kaiming-uniform with a = √5 as torch's kaiming_uniform_, i.e. U(±1/√in)
//   B: (out, rank) zeros, so a fresh adapter leaves the model's output unchanged.
// With LoRA on, every other parameter is frozen (no gradient, no optimizer state), and the
// frozen Linear weights may be stored as f32, f16 (arithmetic fp32), NF4 or int4 (ops/int4.hpp:
// groups of ModelSpec::int4_group_size; a Linear whose input width the group does not divide
// stays f32, as compressed-tensors files keep such weights dense).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace magellano::nn {

enum class WeightStorage { f32, f16, nf4, int4 };
const char* to_string(WeightStorage s);
WeightStorage parse_weight_storage(const std::string& s);  // "fp32" | "fp16" | "nf4" | "int4"

// Target module kinds: in_proj, x_proj, dt_proj, out_proj (Mamba; Mamba2 blocks have in_proj
// and out_proj), q_proj, k_proj, v_proj, o_proj (attention), gate (MoE router), experts (every
// expert's w1, w2, w3), shared_expert (the MoE's shared expert's w1, w2, w3), mlp (the dense MLP
// blocks' w1, w2, w3; nn/mlp.hpp).
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

}  // namespace magellano::nn
