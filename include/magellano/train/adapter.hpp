// LoRA adapters on disk, in the layout of Hugging Face PEFT (so `PeftModel.from_pretrained`
// reads ours and we read theirs for the same module names):
//   adapter_config.json        {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r", "lora_alpha",
//                               "lora_dropout", "target_modules", "bias": "none",
//                               "fan_in_fan_out": false, "base_model_name_or_path", ...}
//   adapter_model.safetensors  "base_model.model.<module path>.lora_A.weight" (r, in) and
//                              ".lora_B.weight" (out, r), f32, metadata {"format": "pt"}
// Module paths are ours, which are Hugging Face's (Mamba) and Mixtral-style (MoE) names, e.g.
// base_model.model.backbone.layers.3.moe.experts.5.w2.lora_B.weight. target_modules uses
// PEFT's suffix names: in_proj, x_proj, dt_proj, out_proj, gate, w1, w2, w3 for "experts",
// shared_expert.w1 ... for "shared_expert" and mlp.w1 ... for "mlp".
#pragma once
#include <filesystem>
#include <string>

#include "magellano/train/checkpoint.hpp"

namespace magellano::train {

constexpr const char* kPeftPrefix = "base_model.model.";

// The adapter_config.json document for `lora` (base: base_model_name_or_path, may be empty).
nlohmann::json adapter_config_json(const LoRASection& lora, const std::string& base);
// Reads and checks dir/adapter_config.json (peft_type LORA, r >= 1, known target modules, no
// fan_in_fan_out, bias "none"); returns its settings as a lora section (base_precision fp32).
LoRASection read_adapter_config(const std::filesystem::path& dir, std::string* base = nullptr);

// Writes the two files into dir (created if needed; each file written atomically).
void save_adapter(const std::filesystem::path& dir, const nn::Model& model, const LoRASection& lora,
                  const std::string& base);
// Writes only adapter_model.safetensors content into `dir` (used inside checkpoints too).
void save_adapter_weights(const std::filesystem::path& file, const nn::Model& model);
// Loads every adapter tensor of `model` from dir/adapter_model.safetensors (names and shapes
// must match; a tensor of the file that the model has no adapter for is an error too).
void load_adapter_weights(const std::filesystem::path& dir, const nn::Model& model);

// The model of a checkpoint directory (as load_model), rebuilt with the adapter of
// `adapter_dir` attached and loaded, its base stored as `base_precision`. For `magellano eval --adapter` and generation.
LoadedModel load_model_with_adapter(const std::filesystem::path& checkpoint_dir,
                                    const std::filesystem::path& adapter_dir, Context& ctx,
                                    nn::WeightStorage base_precision = nn::WeightStorage::f32);

}  // namespace magellano::train
