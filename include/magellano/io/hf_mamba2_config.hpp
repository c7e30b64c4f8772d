// The config.json of a Hugging Face transformers Mamba2 model ("model_type": "mamba2",
// Mamba2ForCausalLM, e.g. state-spaces/mamba2-130m converted, mistralai/Mamba-Codestral-7B).
// Keys and defaults are those of transformers' Mamba2Config:
//   vocab_size 32768, hidden_size 4096, state_size 128, num_hidden_layers 64, expand 2,
//   conv_kernel 4, n_groups 8, head_dim 64, num_heads 128, chunk_size 256, use_bias false,
//   use_conv_bias true, layer_norm_epsilon 1e-5, time_step_min 0.001, time_step_max 0.1,
//   time_step_floor 1e-4, time_step_limit (0.0, inf), tie_word_embeddings false,
//   hidden_act "silu", rms_norm true.
// time_step_limit may be written [0.0, Infinity] (Python's json.dumps), [0.0, {"__float__":
// "Infinity"}] (newer transformers) or be absent; read the file with io::read_hf_json.
// A key that is absent takes its default; keys we do not use (time_step_rank, residual_in_fp32,
// rescale_prenorm_residual, initializer_range, use_cache, token ids, ...) are ignored.
#pragma once
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>

#include <nlohmann/json.hpp>

namespace magellano::io {

struct HfMamba2Config {
  int64_t vocab_size = 32768;
  int64_t hidden_size = 4096;      // D
  int64_t state_size = 128;        // N
  int64_t num_hidden_layers = 64;
  int64_t expand = 2;              // Di = expand * D
  int64_t conv_kernel = 4;         // K
  int64_t n_groups = 8;            // G
  int64_t head_dim = 64;           // P
  int64_t num_heads = 128;         // H; num_heads * head_dim must equal expand * hidden_size
  int64_t chunk_size = 256;        // mamba_ssm's kernel tile; a speed knob only
  bool use_bias = false;           // in_proj / out_proj biases
  bool use_conv_bias = true;
  bool tie_word_embeddings = false;  // Mamba2 ships an untied lm_head.weight by default
  double layer_norm_epsilon = 1e-5;
  double time_step_min = 0.001, time_step_max = 0.1, time_step_floor = 1e-4;
  double time_step_lo = 0.0, time_step_hi = std::numeric_limits<double>::infinity();
};

// Parses a config object. `source` names it in errors (e.g. the file's path). Throws
// magellano::Error with one line when model_type is not "mamba2", a value has the wrong type or
// range, num_heads · head_dim differs from expand · hidden_size, n_groups does not divide
// num_heads, or the model is one Magellano does not run (hidden_act other than silu, rms_norm false).
HfMamba2Config parse_hf_mamba2_config(const nlohmann::json& j, const std::string& source = "config.json");

// Reads <dir>/config.json, or the file itself when given a file (Python's float literals allowed).
HfMamba2Config read_hf_mamba2_config(const std::filesystem::path& dir_or_file);

// True when <dir>/config.json says "model_type": "mamba2". Never throws.
bool is_hf_mamba2_dir(const std::filesystem::path& dir);

}  // namespace magellano::io
