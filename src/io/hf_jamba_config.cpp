#include "magellano/io/hf_jamba_config.hpp"

#include "magellano/io/hf_json.hpp"
#include "magellano/runtime/json_parse.hpp"

namespace magellano::io {

HfJambaConfig parse_hf_jamba_config(const nlohmann::json& j, const std::string& source) {
  const HfConfigFields f(j, source);
  f.model_type("jamba", "JambaConfig");
  HfJambaConfig c;
  f.size("vocab_size", c.vocab_size);
  f.size("hidden_size", c.hidden_size);
  f.size("intermediate_size", c.intermediate_size);
  f.size("num_hidden_layers", c.num_hidden_layers);
  f.size("num_attention_heads", c.num_attention_heads);
  if (j.contains("num_key_value_heads") && j.at("num_key_value_heads").is_null())
    c.num_key_value_heads = c.num_attention_heads;
  else
    f.size("num_key_value_heads", c.num_key_value_heads);
  f.number("rms_norm_eps", c.rms_norm_eps);
  f.flag("tie_word_embeddings", c.tie_word_embeddings);
  f.size("num_experts", c.num_experts);
  f.size("num_experts_per_tok", c.num_experts_per_tok);
  f.number("router_aux_loss_coef", c.router_aux_loss_coef, true);
  f.size("expert_layer_period", c.expert_layer_period);
  f.count("expert_layer_offset", c.expert_layer_offset);
  f.size("attn_layer_period", c.attn_layer_period);
  f.count("attn_layer_offset", c.attn_layer_offset);
  f.size("mamba_d_state", c.mamba_d_state);
  f.size("mamba_d_conv", c.mamba_d_conv);
  f.size("mamba_expand", c.mamba_expand);
  if (j.contains("mamba_dt_rank") && j.at("mamba_dt_rank") != "auto") f.size("mamba_dt_rank", c.mamba_dt_rank);
  f.flag("mamba_conv_bias", c.mamba_conv_bias);
  f.flag("mamba_proj_bias", c.mamba_proj_bias);
  f.absent("sliding_window", "sliding-window attention is not supported; Magellano's attention layers see the whole context.");
  std::string act = "silu";
  f.text("hidden_act", act);
  if (act != "silu" && act != "swish") f.bad("\"hidden_act\" is \"" + act + "\"; Magellano runs \"silu\" only.");
  if (c.attn_layer_offset >= c.attn_layer_period)
    f.bad("\"attn_layer_offset\" " + std::to_string(c.attn_layer_offset) + " must be below \"attn_layer_period\" " +
          std::to_string(c.attn_layer_period) + ".");
  if (c.expert_layer_offset >= c.expert_layer_period)
    f.bad("\"expert_layer_offset\" " + std::to_string(c.expert_layer_offset) +
          " must be below \"expert_layer_period\" " + std::to_string(c.expert_layer_period) + ".");
  if (!f.layer_types("layers_block_type", c.num_hidden_layers, c.attention_layers) &&
      !f.layer_types("layer_types", c.num_hidden_layers, c.attention_layers))
    for (int64_t i = 0; i < c.num_hidden_layers; ++i)
      c.attention_layers.push_back(i % c.attn_layer_period == c.attn_layer_offset);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i)
    c.expert_layers.push_back(c.num_experts > 1 && i % c.expert_layer_period == c.expert_layer_offset);
  f.attention_heads(c.hidden_size, c.num_attention_heads, c.num_key_value_heads);
  if (c.num_experts > 1 && c.num_experts_per_tok > c.num_experts)
    f.bad("\"num_experts_per_tok\" " + std::to_string(c.num_experts_per_tok) + " exceeds \"num_experts\" " +
          std::to_string(c.num_experts) + ".");
  return c;
}

HfJambaConfig read_hf_jamba_config(const std::filesystem::path& dir_or_file) {
  const auto path = std::filesystem::is_directory(dir_or_file) ? dir_or_file / "config.json" : dir_or_file;
  return parse_hf_jamba_config(read_hf_json(path, "Hugging Face config"), path.string());
}

bool is_hf_jamba_dir(const std::filesystem::path& dir) { return hf_model_type(dir) == "jamba"; }

}  // namespace magellano::io
