#include "magellano/io/hf_granite_config.hpp"

#include "magellano/io/hf_json.hpp"
#include "magellano/runtime/json_parse.hpp"

namespace magellano::io {

HfGraniteHybridConfig parse_hf_granite_config(const nlohmann::json& j, const std::string& source) {
  const HfConfigFields f(j, source);
  f.model_type("granitemoehybrid", "GraniteMoeHybridConfig");
  HfGraniteHybridConfig c;
  f.size("vocab_size", c.vocab_size);
  f.size("hidden_size", c.hidden_size);
  f.size("intermediate_size", c.intermediate_size);
  f.size("num_hidden_layers", c.num_hidden_layers);
  f.size("num_attention_heads", c.num_attention_heads);
  if (j.contains("num_key_value_heads") && !j.at("num_key_value_heads").is_null())
    f.size("num_key_value_heads", c.num_key_value_heads);
  f.number("rms_norm_eps", c.rms_norm_eps);
  f.flag("tie_word_embeddings", c.tie_word_embeddings);
  f.number("rope_theta", c.rope_theta);
  f.number("embedding_multiplier", c.embedding_multiplier);
  f.number("logits_scaling", c.logits_scaling);
  f.number("residual_multiplier", c.residual_multiplier);
  f.number("attention_multiplier", c.attention_multiplier);
  f.count("num_local_experts", c.num_local_experts);
  f.size("num_experts_per_tok", c.num_experts_per_tok);
  f.number("router_aux_loss_coef", c.router_aux_loss_coef, true);
  f.size("shared_intermediate_size", c.shared_intermediate_size);
  f.size("mamba_n_heads", c.mamba_n_heads);
  f.size("mamba_n_groups", c.mamba_n_groups);
  f.size("mamba_d_state", c.mamba_d_state);
  f.size("mamba_d_conv", c.mamba_d_conv);
  f.size("mamba_expand", c.mamba_expand);
  f.flag("mamba_conv_bias", c.mamba_conv_bias);
  f.flag("mamba_proj_bias", c.mamba_proj_bias);
  if (j.contains("mamba_d_head") && j.at("mamba_d_head") != "auto") f.size("mamba_d_head", c.mamba_d_head);
  std::string pos;
  if (!j.contains("position_embedding_type") || !j.at("position_embedding_type").is_null())
    f.text("position_embedding_type", pos);
  if (pos != "" && pos != "nope" && pos != "rope")
    f.bad("\"position_embedding_type\" is \"" + pos + "\"; expected null, \"nope\" or \"rope\".");
  c.rope = pos == "rope";
  f.absent("rope_scaling", "scaled rotary positions are not supported; remove it to run unscaled RoPE.");
  bool attention_bias = false;
  f.flag("attention_bias", attention_bias);
  if (attention_bias) f.bad("\"attention_bias\" is true; Magellano's attention has no projection biases.");
  std::string act = "silu";
  f.text("hidden_act", act);
  if (act != "silu" && act != "swish") f.bad("\"hidden_act\" is \"" + act + "\"; Magellano runs \"silu\" only.");
  if (!f.layer_types("layer_types", c.num_hidden_layers, c.attention_layers) &&
      !f.layer_types("layers_block_type", c.num_hidden_layers, c.attention_layers))
    c.attention_layers.assign(c.num_hidden_layers, false);
  if (c.num_key_value_heads == 0) c.num_key_value_heads = c.num_attention_heads;
  f.attention_heads(c.hidden_size, c.num_attention_heads, c.num_key_value_heads);
  const int64_t inner = c.mamba_expand * c.hidden_size;
  if (c.mamba_d_head == 0) {
    if (inner % c.mamba_n_heads)
      f.bad("\"mamba_n_heads\" " + std::to_string(c.mamba_n_heads) + " does not divide \"mamba_expand\" x " +
            "\"hidden_size\" = " + std::to_string(inner) + ".");
    c.mamba_d_head = inner / c.mamba_n_heads;
  }
  if (c.mamba_d_head * c.mamba_n_heads != inner)
    f.bad("\"mamba_d_head\" x \"mamba_n_heads\" = " + std::to_string(c.mamba_d_head * c.mamba_n_heads) +
          " must equal \"mamba_expand\" x \"hidden_size\" = " + std::to_string(inner) + ".");
  if (c.mamba_n_heads % c.mamba_n_groups)
    f.bad("\"mamba_n_groups\" " + std::to_string(c.mamba_n_groups) + " does not divide \"mamba_n_heads\" " +
          std::to_string(c.mamba_n_heads) + ".");
  if (c.num_local_experts > 0 && c.num_experts_per_tok > c.num_local_experts)
    f.bad("\"num_experts_per_tok\" " + std::to_string(c.num_experts_per_tok) + " exceeds \"num_local_experts\" " +
          std::to_string(c.num_local_experts) + ".");
  return c;
}

HfGraniteHybridConfig read_hf_granite_config(const std::filesystem::path& dir_or_file) {
  const auto path = std::filesystem::is_directory(dir_or_file) ? dir_or_file / "config.json" : dir_or_file;
  return parse_hf_granite_config(read_hf_json(path, "Hugging Face config"), path.string());
}

bool is_hf_granite_dir(const std::filesystem::path& dir) { return hf_model_type(dir) == "granitemoehybrid"; }

}  // namespace magellano::io
