// The config.json of a Hugging Face Jamba model ("model_type": "jamba", JambaForCausalLM: AI21's
// Jamba). Keys and defaults are those of transformers' JambaConfig:
//   vocab_size 65536, hidden_size 4096, intermediate_size 14336 (each expert's and the dense
//   MLPs' F), num_hidden_layers 32, num_attention_heads 32, num_key_value_heads 8,
//   rms_norm_eps 1e-6, tie_word_embeddings false, num_experts 16, num_experts_per_tok 2,
//   router_aux_loss_coef 0.001, expert_layer_period 2, expert_layer_offset 1, attn_layer_period 8,
//   attn_layer_offset 4, mamba_d_state 16, mamba_d_conv 4, mamba_expand 2, mamba_dt_rank "auto"
//   (= ceil(hidden_size / 16)), mamba_conv_bias true, mamba_proj_bias false, hidden_act "silu",
//   sliding_window null.
// Layer i is attention when i % attn_layer_period == attn_layer_offset, else Mamba (Mamba1 with
// RMSNorms on dt, B and C); its feed-forward is a sparse MoE (softmax over all experts, top-k
// weights not renormalised) when i % expert_layer_period == expert_layer_offset, else a dense
// SwiGLU MLP. Attention has no positions (NoPE) and the 1/sqrt(d) scale.
// A "layers_block_type" / "layer_types" list, when a file carries one, overrides the periods.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace magellano::io {

struct HfJambaConfig {
  int64_t vocab_size = 65536;
  int64_t hidden_size = 4096;
  int64_t intermediate_size = 14336;
  int64_t num_hidden_layers = 32;
  int64_t num_attention_heads = 32;
  int64_t num_key_value_heads = 8;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  int64_t num_experts = 16, num_experts_per_tok = 2;
  double router_aux_loss_coef = 0.001;
  int64_t expert_layer_period = 2, expert_layer_offset = 1, attn_layer_period = 8, attn_layer_offset = 4;
  int64_t mamba_d_state = 16, mamba_d_conv = 4, mamba_expand = 2, mamba_dt_rank = 0;  // 0 = "auto"
  bool mamba_conv_bias = true, mamba_proj_bias = false;
  std::vector<bool> attention_layers;  // per layer: true = attention, false = Mamba
  std::vector<bool> expert_layers;     // per layer: true = sparse MoE, false = dense MLP
  int64_t dt_rank() const { return mamba_dt_rank > 0 ? mamba_dt_rank : (hidden_size + 15) / 16; }
};

// Parses a config object; `source` names it in errors. Throws magellano::Error with one line for
// a wrong model_type, a value of the wrong type or range, an offset not below its period, an
// unknown layer type, sliding-window attention (not supported), an activation other than silu,
// or num_attention_heads not dividing hidden_size.
HfJambaConfig parse_hf_jamba_config(const nlohmann::json& j, const std::string& source = "config.json");
HfJambaConfig read_hf_jamba_config(const std::filesystem::path& dir_or_file);
bool is_hf_jamba_dir(const std::filesystem::path& dir);  // model_type "jamba"; never throws

}  // namespace magellano::io
