// Hugging Face GraniteMoeHybridForCausalLM and JambaForCausalLM folders for tests, written from
// weights keyed by Magellano's parameter names (hybrid_reference.hpp): model.safetensors (F32)
// under the names and packings those models' save_pretrained writes, and the config.json given.
// The name mapping here is written out independently of src/train/hf_layout.cpp, so a test that
// writes with one and loads with the other checks both.
#pragma once
#include <filesystem>

#include <nlohmann/json.hpp>

#include "hybrid_reference.hpp"

namespace mgtest {

// Granite: our blocks 2i (mixer) and 2i + 1 (MoE + shared MLP, or the shared MLP alone) are
// layer i; experts packed as block_sparse_moe.input_linear (X, 2F, D) = [w1_e; w3_e] per expert
// and output_linear (X, D, F); shared_mlp.input_linear (2Fs, D) = [w1; w3].
void write_hf_granite_folder(const magellano::nn::Model& model, const ref::Weights& w,
                             const std::filesystem::path& dir, const nlohmann::json& config);

// Jamba: the same two blocks per layer; experts as feed_forward.experts.{e}.{gate,up,down}_proj
// (the published files) or, with `fused_experts`, newer transformers' experts.gate_up_proj
// (X, 2F, D) and experts.down_proj (X, D, F).
void write_hf_jamba_folder(const magellano::nn::Model& model, const ref::Weights& w,
                           const std::filesystem::path& dir, const nlohmann::json& config, bool fused_experts);

}  // namespace mgtest
