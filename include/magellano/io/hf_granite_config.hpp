// The config.json of a Hugging Face GraniteMoeHybrid model ("model_type": "granitemoehybrid",
// GraniteMoeHybridForCausalLM: IBM Granite 4.0-H). Keys and defaults are those of transformers'
// GraniteMoeHybridConfig:
//   vocab_size 32000, hidden_size 4096, intermediate_size 11008 (each expert's F),
//   num_hidden_layers 32, num_attention_heads 32, num_key_value_heads (= heads when absent),
//   rms_norm_eps 1e-6, tie_word_embeddings false, rope_theta 10000, rope_scaling null,
//   attention_bias false, embedding_multiplier 1, logits_scaling 1, residual_multiplier 1,
//   attention_multiplier 1 (the score scale itself), num_local_experts 8 (0 = no experts: the
//   shared MLP alone), num_experts_per_tok 2, router_aux_loss_coef 0.001,
//   shared_intermediate_size 1024, position_embedding_type null (also "nope") or "rope",
//   layer_types (old spelling layers_block_type) a list of "mamba" / "attention" (absent: every
//   layer Mamba), mamba_n_heads 128, mamba_n_groups 1, mamba_d_state 256, mamba_d_head "auto"
//   (= mamba_expand · hidden_size / mamba_n_heads), mamba_d_conv 4, mamba_expand 2,
//   mamba_chunk_size 256 (a kernel tile, not used), mamba_conv_bias true, mamba_proj_bias false,
//   hidden_act "silu".
// Each decoder layer i is: x += residual_multiplier · mixer_i(input_layernorm(x)) (a Mamba2
// layer, BambaMixer, or attention), then x += residual_multiplier · (moe(n) + shared_mlp(n)),
// n = post_attention_layernorm(x) (the shared MLP alone without experts).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace magellano::io {

struct HfGraniteHybridConfig {
  int64_t vocab_size = 32000;
  int64_t hidden_size = 4096;        // D
  int64_t intermediate_size = 11008;  // F, each expert's
  int64_t num_hidden_layers = 32;
  int64_t num_attention_heads = 32;
  int64_t num_key_value_heads = 0;  // 0 = num_attention_heads
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  double rope_theta = 10000.0;
  bool rope = false;  // position_embedding_type "rope"
  double embedding_multiplier = 1.0, logits_scaling = 1.0, residual_multiplier = 1.0,
         attention_multiplier = 1.0;
  int64_t num_local_experts = 8, num_experts_per_tok = 2;
  double router_aux_loss_coef = 0.001;
  int64_t shared_intermediate_size = 1024;
  std::vector<bool> attention_layers;  // per layer: true = attention, false = Mamba2
  int64_t mamba_n_heads = 128, mamba_n_groups = 1, mamba_d_state = 256, mamba_d_head = 0,  // 0 = "auto"
      mamba_d_conv = 4, mamba_expand = 2;
  bool mamba_conv_bias = true, mamba_proj_bias = false;
  int64_t head_dim() const { return hidden_size / num_attention_heads; }  // attention's d
};

// Parses a config object; `source` names it in errors. Throws magellano::Error with one line for
// a wrong model_type, a value of the wrong type or range, an unknown layer_types value, a layer
// list whose length differs from num_hidden_layers, rope_scaling (not supported), attention
// biases, an activation other than silu, mamba sizes that do not divide, or num_attention_heads
// not dividing hidden_size.
HfGraniteHybridConfig parse_hf_granite_config(const nlohmann::json& j, const std::string& source = "config.json");
HfGraniteHybridConfig read_hf_granite_config(const std::filesystem::path& dir_or_file);
bool is_hf_granite_dir(const std::filesystem::path& dir);  // model_type "granitemoehybrid"; never throws

}  // namespace magellano::io
