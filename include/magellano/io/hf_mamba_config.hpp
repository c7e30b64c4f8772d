// The config.json of a Hugging Face transformers Mamba model ("model_type": "mamba", e.g.
// state-spaces/mamba-130m-hf). Keys and defaults are those of transformers' MambaConfig:
//   vocab_size 50280, hidden_size 768, state_size 16, num_hidden_layers 32, expand 2,
//   conv_kernel 4, time_step_rank "auto" (= ceil(hidden_size / 16)), use_bias false,
//   use_conv_bias true, tie_word_embeddings true, layer_norm_epsilon 1e-5.
// A key that is absent takes its default, as transformers does; keys we do not use are ignored.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace magellano::io {

struct HfMambaConfig {
  int64_t vocab_size = 50280;
  int64_t hidden_size = 768;       // D
  int64_t state_size = 16;         // N
  int64_t num_hidden_layers = 32;
  int64_t expand = 2;              // E = expand * D
  int64_t conv_kernel = 4;
  int64_t time_step_rank = 48;     // dt_rank
  bool use_bias = false;           // in_proj / out_proj biases
  bool use_conv_bias = true;
  bool tie_word_embeddings = true;  // lm_head shares backbone.embeddings.weight
  double layer_norm_epsilon = 1e-5;

  int64_t intermediate_size() const { return expand * hidden_size; }  // E
};

// Parses a config object. `source` names it in errors (e.g. the file's path). Throws
// magellano::Error when model_type is not "mamba" or a value has the wrong type or range.
HfMambaConfig parse_hf_mamba_config(const nlohmann::json& j,
                                    const std::string& source = "config.json");

// Reads <dir>/config.json, or the file itself when given a file.
HfMambaConfig read_hf_mamba_config(const std::filesystem::path& dir_or_file);

// True when <dir>/config.json exists, is JSON and says "model_type": "mamba". Never throws.
bool is_hf_mamba_dir(const std::filesystem::path& dir);

}  // namespace magellano::io
