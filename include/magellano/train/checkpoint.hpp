// Checkpoints of a training run, and loading a model from any checkpoint directory.
//
// A Magellano checkpoint is a directory (written atomically, see io/checkpoint_dir.hpp):
// (with LoRA on, adapter_config.json + adapter_model.safetensors, PEFT's layout, replace
// model.safetensors, and the optimizer state covers the adapters only)
//   config.json          the effective training config (train::Config::to_json)
//   model.safetensors    every parameter under its Hugging Face / Mixtral name, f32
//   optimizer.safetensors  AdamW moments "<name>.exp_avg", "<name>.exp_avg_sq", f32; with
//                        train.optimizer_states "int8" the 8-bit codes and absmax per pack chunk
//                        (optim::AdamW::state_st); the same file for either optimizer_offload
//   trainer_state.json   {"format", "step", "optimizer_steps", "tokens", "batcher": {...}, "run_id",
//                        "init_from" (absolute; with --init-from)}  (train/trainer_state.hpp)
// Wherever a model's weights are read, model.safetensors may instead be a sharded set
// (model.safetensors.index.json and its shards, io/safetensors_set.hpp), as Hugging Face writes
// checkpoints above ~5 GB.
// A Hugging Face Mamba or Mamba2 checkpoint directory (config.json with "model_type": "mamba"
// or "mamba2" and model.safetensors, as MambaForCausalLM / Mamba2ForCausalLM.save_pretrained
// write them) is accepted wherever a model is loaded: the names are the same, so the weights
// load as they are (a tensor whose shape disagrees with the config is one clear error naming it
// and both shapes).
#pragma once
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "magellano/io/safetensors.hpp"
#include "magellano/nn/model.hpp"
#include "magellano/train/config.hpp"
#include "magellano/train/hf_layout.hpp"
#include "magellano/train/trainer_state.hpp"

namespace magellano::optim {
class AdamW;
}
namespace magellano::io {
class SafetensorsSet;
}

namespace magellano::train {

nn::ModelSpec model_spec(const ModelConfig& m);
// The model section plus LoRA (adapters, frozen base storage) and gradient checkpointing.
nn::ModelSpec model_spec(const Config& c);

struct LoadedModel {
  Config config;                     // for a Hugging Face directory: built from its config.json
  std::unique_ptr<nn::Model> model;  // weights loaded
  bool hugging_face = false;
  HfLocator locate;  // a Hugging Face hybrid's tensor locations (empty: parameters under their own names)
};

// Loads the model of a Magellano or Hugging Face Mamba / Mamba2 checkpoint directory onto ctx. Errors
// name the directory and what is missing or does not match. A LoRA training checkpoint
// (adapter files, no model.safetensors) loads its base (trainer_state's "init_from", else the
// seed's initialisation) and its adapter. With `lora`, the model is built with those adapters
// (zero B: load them with load_adapter_weights) and that base storage instead.
// Gradient checkpointing is off in the loaded config (it is for training).
LoadedModel load_model(const std::filesystem::path& dir, Context& ctx, const LoRASection* lora = nullptr);

// Copies every parameter of `model` from a checkpoint's weights (names and shapes must match;
// NF4 weights in the files load into NF4 Linears, or dequantized into fp32 / fp16 ones).
// A later name-mapping step (Hugging Face Jamba / Granite names) can build on the same set:
// io::load_into(weights, "<file's name>", tensor) reads one tensor from whichever shard holds it.
// With `locate` (a Hugging Face hybrid, train/hf_layout.hpp) each parameter is read from where
// the locator says; without, under its own name.
void load_weights(const io::SafetensorsSet& weights, const nn::Model& model, const HfLocator& locate = {});
// `path`: a checkpoint folder (model.safetensors, or model.safetensors.index.json and its shards;
// io/safetensors_set.hpp) or one .safetensors file.
void load_weights(const std::filesystem::path& path, const nn::Model& model, const HfLocator& locate = {});

// The config of a checkpoint folder (Magellano's config.json, or one built from a Hugging Face
// config), whether it is a Hugging Face folder, and where its weights are. Errors name the folder.
struct CheckpointSource {
  Config config;
  bool hugging_face = false;
  HfLocator locate;
};
CheckpointSource read_checkpoint_config(const std::filesystem::path& dir);

// For --init-from: throws one clear line when the run's model computes something else with the
// same weights than the checkpoint's (attention positions or score scale, Granite's multipliers,
// MoE routing); shapes are checked as the weights load.
void check_same_function(const ModelConfig& run, const ModelConfig& source, const std::filesystem::path& dir);

// Where the weights of checkpoint folder `dir` are: a Hugging Face hybrid's locator, else none
// (parameters under their own names).
HfLocator weights_locator(const std::filesystem::path& dir);

// Writes <parent>/step-<step> atomically, then keeps only the newest `keep` checkpoints (the one
// just written always among them). optimizer_state: the entries of optimizer.safetensors when
// they come from elsewhere (ZeRO: gathered from the ranks, train/zero_shard.hpp); nullptr:
// optimizer.state_st().
std::filesystem::path save_checkpoint(
    const std::filesystem::path& parent, int64_t step, int64_t keep, const Config& config, const nn::Model& model,
    const optim::AdamW& optimizer, const nlohmann::json& trainer_state,
    const std::vector<std::pair<std::string, io::StTensor>>* optimizer_state = nullptr);

// Restores weights and optimizer state from a Magellano checkpoint; returns its trainer state
// (validated before anything is loaded).
TrainerState load_training_state(const std::filesystem::path& dir, const nn::Model& model,
                                 optim::AdamW& optimizer);

}  // namespace magellano::train
