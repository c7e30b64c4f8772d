// Hugging Face Mamba2ForCausalLM folders for tests, written from the float64 reference's weights
// (mamba2_reference.hpp): model.safetensors (F32, the names save_pretrained writes) and
// config.json (transformers' Mamba2Config keys).
#pragma once
#include <filesystem>
#include <string>

#include "mamba2_reference.hpp"

namespace mgtest {

// config.json's text for `m`, time_step_limit written as the raw JSON-ish text given (e.g.
// "[0.0, Infinity]", "[0.0, {\"__float__\": \"Infinity\"}]"; empty: the key is left out).
std::string hf_mamba2_config_text(const ref::Mamba2Model& m, const std::string& time_step_limit);

// Writes <dir>/model.safetensors and <dir>/config.json (the text given); dir must exist.
void write_hf_mamba2_folder(const ref::Mamba2Model& m, const std::filesystem::path& dir,
                            const std::string& config_text);

}  // namespace mgtest
