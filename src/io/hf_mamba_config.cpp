#include "magellano/io/hf_mamba_config.hpp"

#include "magellano/io/hf_json.hpp"
#include "magellano/io/json_file.hpp"
#include "magellano/runtime/json_parse.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::io {

HfMambaConfig parse_hf_mamba_config(const nlohmann::json& j, const std::string& source) {
  const HfConfigFields f(j, source);
  if (!j.contains("model_type"))
    f.bad("has no \"model_type\"; expected a transformers Mamba config "
          "(\"model_type\": \"mamba\", e.g. from state-spaces/mamba-130m-hf).");
  const auto& mt = j.at("model_type");
  if (!mt.is_string() || mt.get<std::string>() != "mamba")
    f.bad("\"model_type\" is " + json_excerpt(mt) +
          "; Magellano imports only \"mamba\" models (transformers MambaConfig).");
  HfMambaConfig c;
  f.size("vocab_size", c.vocab_size);
  f.size("hidden_size", c.hidden_size);
  f.size("state_size", c.state_size);
  f.size("num_hidden_layers", c.num_hidden_layers);
  f.size("expand", c.expand);
  f.size("conv_kernel", c.conv_kernel);
  f.flag("use_bias", c.use_bias);
  f.flag("use_conv_bias", c.use_conv_bias);
  f.flag("tie_word_embeddings", c.tie_word_embeddings);
  c.time_step_rank = (c.hidden_size + 15) / 16;  // "auto": ceil(hidden_size / 16)
  if (j.contains("time_step_rank") && j.at("time_step_rank") != "auto") f.size("time_step_rank", c.time_step_rank);
  f.number("layer_norm_epsilon", c.layer_norm_epsilon);
  return c;
}

HfMambaConfig read_hf_mamba_config(const std::filesystem::path& dir_or_file) {
  const auto path = std::filesystem::is_directory(dir_or_file) ? dir_or_file / "config.json"
                                                               : dir_or_file;
  return parse_hf_mamba_config(read_json(path, "Hugging Face config"), path.string());
}

bool is_hf_mamba_dir(const std::filesystem::path& dir) { return hf_model_type(dir) == "mamba"; }

}  // namespace magellano::io
