#include "magellano/io/hf_mamba2_config.hpp"

#include <cmath>

#include "magellano/io/hf_json.hpp"
#include "magellano/runtime/error.hpp"
#include "magellano/runtime/json_parse.hpp"

namespace magellano::io {

namespace {

// [lo, hi] with hi a number, Infinity or {"__float__": "Infinity"}; 0 <= lo < hi.
void get_limit(const nlohmann::json& j, HfMamba2Config& c, const HfConfigFields& f) {
  if (!j.contains("time_step_limit")) return;
  const auto& v = j.at("time_step_limit");
  const bool pair = v.is_array() && v.size() == 2;
  const double lo = pair ? hf_float(v[0]).value_or(NAN) : NAN, hi = pair ? hf_float(v[1]).value_or(NAN) : NAN;
  if (!(lo >= 0) || !(hi > lo))  // false for NaN: not a number or {"__float__": ...}
    f.bad("\"time_step_limit\" is " + json_excerpt(v) + "; expected [lo, hi] with 0 <= lo < hi (hi may be Infinity).");
  c.time_step_lo = lo;
  c.time_step_hi = hi;
}

}  // namespace

HfMamba2Config parse_hf_mamba2_config(const nlohmann::json& j, const std::string& source) {
  const HfConfigFields f(j, source);
  f.model_type("mamba2", "Mamba2Config");
  HfMamba2Config c;
  f.size("vocab_size", c.vocab_size);
  f.size("hidden_size", c.hidden_size);
  f.size("state_size", c.state_size);
  f.size("num_hidden_layers", c.num_hidden_layers);
  f.size("expand", c.expand);
  f.size("conv_kernel", c.conv_kernel);
  f.size("n_groups", c.n_groups);
  f.size("head_dim", c.head_dim);
  f.size("num_heads", c.num_heads);
  f.size("chunk_size", c.chunk_size);
  f.flag("use_bias", c.use_bias);
  f.flag("use_conv_bias", c.use_conv_bias);
  f.flag("tie_word_embeddings", c.tie_word_embeddings);
  f.number("layer_norm_epsilon", c.layer_norm_epsilon);
  f.number("time_step_min", c.time_step_min);
  f.number("time_step_max", c.time_step_max);
  f.number("time_step_floor", c.time_step_floor, true);
  get_limit(j, c, f);
  if (j.contains("hidden_act") && j.at("hidden_act") != "silu" && j.at("hidden_act") != "swish")
    f.bad("\"hidden_act\" is " + json_excerpt(j.at("hidden_act")) + "; Magellano's Mamba2 runs \"silu\" only.");
  if (j.contains("rms_norm") && j.at("rms_norm") != true)
    f.bad("\"rms_norm\" is " + json_excerpt(j.at("rms_norm")) +
          "; Magellano's Mamba2 always applies the gated RMSNorm (rms_norm true).");
  if (c.num_heads * c.head_dim != c.expand * c.hidden_size)
    f.bad("\"num_heads\" x \"head_dim\" = " + std::to_string(c.num_heads) + " x " + std::to_string(c.head_dim) +
          " = " + std::to_string(c.num_heads * c.head_dim) + " must equal \"expand\" x \"hidden_size\" = " +
          std::to_string(c.expand) + " x " + std::to_string(c.hidden_size) + " = " +
          std::to_string(c.expand * c.hidden_size) + ".");
  if (c.num_heads % c.n_groups)
    f.bad("\"n_groups\" " + std::to_string(c.n_groups) + " does not divide \"num_heads\" " +
          std::to_string(c.num_heads) + ".");
  return c;
}

HfMamba2Config read_hf_mamba2_config(const std::filesystem::path& dir_or_file) {
  const auto path = std::filesystem::is_directory(dir_or_file) ? dir_or_file / "config.json" : dir_or_file;
  return parse_hf_mamba2_config(read_hf_json(path, "Hugging Face config"), path.string());
}

bool is_hf_mamba2_dir(const std::filesystem::path& dir) { return hf_model_type(dir) == "mamba2"; }

}  // namespace magellano::io
