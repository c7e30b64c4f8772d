// Hugging Face config.json files as Python writes them. Python's json.dumps (allow_nan=True, its
// default) writes the non-finite floats as the bare literals Infinity, -Infinity and NaN, which
// are not JSON: nlohmann rejects them. Newer transformers write {"__float__": "Infinity"}
// instead. Mamba2's time_step_limit (0.0, inf) is the common case:
//   "time_step_limit": [0.0, Infinity]   or   "time_step_limit": [0.0, {"__float__": "Infinity"}]
// python_floats_to_json() turns every bare literal outside a string into the second spelling, so
// one parser and hf_float() read both.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace magellano::io {

// `text` with each Infinity, -Infinity and NaN outside JSON strings replaced by
// {"__float__": "Infinity"} (resp. "-Infinity", "NaN"). Everything else is left as it is,
// including invalid JSON (the parser then reports it).
std::string python_floats_to_json(const std::string& text);

// read_json (io/json_file.hpp) for a file that Python may have written: the same errors, after
// python_floats_to_json.
nlohmann::json read_hf_json(const std::filesystem::path& path, const std::string& what);

// A float of a Hugging Face config: a JSON number, or {"__float__": "Infinity" | "-Infinity" |
// "NaN"} (also "inf", "-inf", "nan"); nullopt for anything else.
std::optional<double> hf_float(const nlohmann::json& v);

// The checked keys of one Hugging Face config object (MambaConfig, Mamba2Config). An absent key
// leaves the caller's default; a bad one is one line: `Hugging Face config <source>: "<key>" is
// <value>; expected ...`.
class HfConfigFields {
 public:
  HfConfigFields(const nlohmann::json& j, std::string source);  // throws unless j is an object
  [[noreturn]] void bad(const std::string& what) const;
  // An integer in [1, 2^31 - 1], so that a product of two sizes cannot overflow int64.
  void size(const char* key, int64_t& out) const;
  // The same, 0 allowed (a count of optional parts, e.g. experts).
  void count(const char* key, int64_t& out) const;
  // A string.
  void text(const char* key, std::string& out) const;
  // Throws unless "model_type" is `type` (`what` names the transformers class in the message).
  void model_type(const char* type, const char* what) const;
  // A list of n layer kinds, each "mamba" or "attention", under `key`: out[i] = (kind is
  // attention). False when the key is absent.
  bool layer_types(const char* key, int64_t n, std::vector<bool>& out) const;
  // Throws unless num_attention_heads divides hidden_size and num_key_value_heads divides it.
  void attention_heads(int64_t hidden, int64_t heads, int64_t kv_heads) const;
  // Throws when `key` is present and not null: a feature Magellano does not run.
  void absent(const char* key, const std::string& why) const;
  void flag(const char* key, bool& out) const;
  // A finite number > 0 (>= 0 with zero_ok).
  void number(const char* key, double& out, bool zero_ok = false) const;

 private:
  const nlohmann::json& j_;
  std::string source_;
};

// The "model_type" of <dir>/config.json ("mamba", "mamba2", ...); "" when the file is absent,
// unreadable, not JSON or has no string model_type. Never throws.
std::string hf_model_type(const std::filesystem::path& dir);

}  // namespace magellano::io
