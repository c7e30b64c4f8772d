#include "magellano/io/hf_mamba_config.hpp"

#include "magellano/io/json_file.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::io {

namespace {

[[noreturn]] void bad(const std::string& source, const std::string& what) {
  throw Error("Hugging Face config " + source + ": " + what);
}

void get_positive(const nlohmann::json& j, const char* key, int64_t& out, const std::string& src) {
  if (!j.contains(key)) return;
  const auto& v = j.at(key);
  if (!v.is_number_integer() || v.get<int64_t>() <= 0)
    bad(src, std::string("\"") + key + "\" is " + json_excerpt(v) + "; expected a positive integer.");
  out = v.get<int64_t>();
}

void get_bool(const nlohmann::json& j, const char* key, bool& out, const std::string& src) {
  if (!j.contains(key)) return;
  const auto& v = j.at(key);
  if (!v.is_boolean()) bad(src, std::string("\"") + key + "\" is " + json_excerpt(v) + "; expected true or false.");
  out = v.get<bool>();
}

}  // namespace

HfMambaConfig parse_hf_mamba_config(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) bad(source, std::string("is a JSON ") + j.type_name() + ", not an object.");
  if (!j.contains("model_type"))
    bad(source, "has no \"model_type\"; expected a transformers Mamba config "
                "(\"model_type\": \"mamba\", e.g. from state-spaces/mamba-130m-hf).");
  const auto& mt = j.at("model_type");
  if (!mt.is_string() || mt.get<std::string>() != "mamba")
    bad(source, "\"model_type\" is " + json_excerpt(mt) +
                    "; Magellano imports only \"mamba\" models (transformers MambaConfig).");
  HfMambaConfig c;
  get_positive(j, "vocab_size", c.vocab_size, source);
  get_positive(j, "hidden_size", c.hidden_size, source);
  get_positive(j, "state_size", c.state_size, source);
  get_positive(j, "num_hidden_layers", c.num_hidden_layers, source);
  get_positive(j, "expand", c.expand, source);
  get_positive(j, "conv_kernel", c.conv_kernel, source);
  get_bool(j, "use_bias", c.use_bias, source);
  get_bool(j, "use_conv_bias", c.use_conv_bias, source);
  get_bool(j, "tie_word_embeddings", c.tie_word_embeddings, source);
  c.time_step_rank = (c.hidden_size + 15) / 16;  // "auto": ceil(hidden_size / 16)
  if (j.contains("time_step_rank") && j.at("time_step_rank") != "auto")
    get_positive(j, "time_step_rank", c.time_step_rank, source);
  if (j.contains("layer_norm_epsilon")) {
    const auto& v = j.at("layer_norm_epsilon");
    if (!v.is_number() || !(v.get<double>() > 0))
      bad(source, "\"layer_norm_epsilon\" is " + json_excerpt(v) + "; expected a positive number.");
    c.layer_norm_epsilon = v.get<double>();
  }
  return c;
}

HfMambaConfig read_hf_mamba_config(const std::filesystem::path& dir_or_file) {
  const auto path = std::filesystem::is_directory(dir_or_file) ? dir_or_file / "config.json"
                                                               : dir_or_file;
  return parse_hf_mamba_config(read_json(path, "Hugging Face config"), path.string());
}

bool is_hf_mamba_dir(const std::filesystem::path& dir) {
  try {
    const auto path = dir / "config.json";
    if (!std::filesystem::is_regular_file(path)) return false;
    const auto j = read_json(path);
    return j.is_object() && j.value("model_type", nlohmann::json()) == "mamba";
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace magellano::io
