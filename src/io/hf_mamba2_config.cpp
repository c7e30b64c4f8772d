#include "magellano/io/hf_mamba2_config.hpp"

#include <cmath>

#include "magellano/io/hf_json.hpp"
#include "magellano/runtime/error.hpp"
#include "magellano/runtime/json_parse.hpp"

namespace magellano::io {

namespace {

[[noreturn]] void bad(const std::string& source, const std::string& what) {
  throw Error("Hugging Face config " + source + ": " + what);
}

// Sizes are read up to 2^31 - 1, so the products checked below cannot overflow.
void get_positive(const nlohmann::json& j, const char* key, int64_t& out, const std::string& src) {
  if (!j.contains(key)) return;
  const auto& v = j.at(key);
  if (!v.is_number_integer() || v.get<int64_t>() <= 0 || v.get<int64_t>() > 2147483647)
    bad(src, std::string("\"") + key + "\" is " + json_excerpt(v) + "; expected a positive integer below 2^31.");
  out = v.get<int64_t>();
}

void get_bool(const nlohmann::json& j, const char* key, bool& out, const std::string& src) {
  if (!j.contains(key)) return;
  const auto& v = j.at(key);
  if (!v.is_boolean()) bad(src, std::string("\"") + key + "\" is " + json_excerpt(v) + "; expected true or false.");
  out = v.get<bool>();
}

// A finite number > 0 (>= 0 where zero_ok).
void get_positive_number(const nlohmann::json& j, const char* key, double& out, const std::string& src,
                         bool zero_ok = false) {
  if (!j.contains(key)) return;
  const auto& v = j.at(key);
  if (!v.is_number() || !(zero_ok ? v.get<double>() >= 0 : v.get<double>() > 0) || !std::isfinite(v.get<double>()))
    bad(src, std::string("\"") + key + "\" is " + json_excerpt(v) + "; expected a " +
                 (zero_ok ? "number >= 0." : "positive number."));
  out = v.get<double>();
}

// [lo, hi] with hi a number, Infinity or {"__float__": "Infinity"}; 0 <= lo < hi.
void get_limit(const nlohmann::json& j, HfMamba2Config& c, const std::string& src) {
  if (!j.contains("time_step_limit")) return;
  const auto& v = j.at("time_step_limit");
  const bool pair = v.is_array() && v.size() == 2;
  const double lo = pair ? hf_float(v[0]).value_or(NAN) : NAN, hi = pair ? hf_float(v[1]).value_or(NAN) : NAN;
  if (!(lo >= 0) || !(hi > lo))  // false for NaN: not a number or {"__float__": ...}
    bad(src, "\"time_step_limit\" is " + json_excerpt(v) + "; expected [lo, hi] with 0 <= lo < hi (hi may be Infinity).");
  c.time_step_lo = lo;
  c.time_step_hi = hi;
}

}  // namespace

HfMamba2Config parse_hf_mamba2_config(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) bad(source, std::string("is a JSON ") + j.type_name() + ", not an object.");
  const auto type = j.find("model_type");
  if (type == j.end() || *type != "mamba2")
    bad(source, "\"model_type\" is " + (type == j.end() ? std::string("missing") : json_excerpt(*type)) +
                    "; expected \"mamba2\" (transformers Mamba2Config).");
  HfMamba2Config c;
  get_positive(j, "vocab_size", c.vocab_size, source);
  get_positive(j, "hidden_size", c.hidden_size, source);
  get_positive(j, "state_size", c.state_size, source);
  get_positive(j, "num_hidden_layers", c.num_hidden_layers, source);
  get_positive(j, "expand", c.expand, source);
  get_positive(j, "conv_kernel", c.conv_kernel, source);
  get_positive(j, "n_groups", c.n_groups, source);
  get_positive(j, "head_dim", c.head_dim, source);
  get_positive(j, "num_heads", c.num_heads, source);
  get_positive(j, "chunk_size", c.chunk_size, source);
  get_bool(j, "use_bias", c.use_bias, source);
  get_bool(j, "use_conv_bias", c.use_conv_bias, source);
  get_bool(j, "tie_word_embeddings", c.tie_word_embeddings, source);
  get_positive_number(j, "layer_norm_epsilon", c.layer_norm_epsilon, source);
  get_positive_number(j, "time_step_min", c.time_step_min, source);
  get_positive_number(j, "time_step_max", c.time_step_max, source);
  get_positive_number(j, "time_step_floor", c.time_step_floor, source, true);
  get_limit(j, c, source);
  if (j.contains("hidden_act") && j.at("hidden_act") != "silu" && j.at("hidden_act") != "swish")
    bad(source, "\"hidden_act\" is " + json_excerpt(j.at("hidden_act")) + "; Magellano's Mamba2 runs \"silu\" only.");
  if (j.contains("rms_norm") && j.at("rms_norm") != true)
    bad(source, "\"rms_norm\" is " + json_excerpt(j.at("rms_norm")) +
                    "; Magellano's Mamba2 always applies the gated RMSNorm (rms_norm true).");
  if (c.num_heads * c.head_dim != c.expand * c.hidden_size)
    bad(source, "\"num_heads\" x \"head_dim\" = " + std::to_string(c.num_heads) + " x " + std::to_string(c.head_dim) +
                    " = " + std::to_string(c.num_heads * c.head_dim) + " must equal \"expand\" x \"hidden_size\" = " +
                    std::to_string(c.expand) + " x " + std::to_string(c.hidden_size) + " = " +
                    std::to_string(c.expand * c.hidden_size) + ".");
  if (c.num_heads % c.n_groups)
    bad(source, "\"n_groups\" " + std::to_string(c.n_groups) + " does not divide \"num_heads\" " +
                    std::to_string(c.num_heads) + ".");
  return c;
}

HfMamba2Config read_hf_mamba2_config(const std::filesystem::path& dir_or_file) {
  const auto path = std::filesystem::is_directory(dir_or_file) ? dir_or_file / "config.json" : dir_or_file;
  return parse_hf_mamba2_config(read_hf_json(path, "Hugging Face config"), path.string());
}

bool is_hf_mamba2_dir(const std::filesystem::path& dir) { return hf_model_type(dir) == "mamba2"; }

}  // namespace magellano::io
