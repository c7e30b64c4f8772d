#include "magellano/io/hf_json.hpp"

#include <cmath>
#include <limits>

#include "magellano/runtime/error.hpp"

#include "magellano/runtime/input_file.hpp"
#include "magellano/runtime/json_parse.hpp"

namespace magellano::io {

std::string python_floats_to_json(const std::string& text) {
  static const std::pair<const char*, const char*> kLiterals[] = {
      {"-Infinity", "{\"__float__\": \"-Infinity\"}"},
      {"Infinity", "{\"__float__\": \"Infinity\"}"},
      {"NaN", "{\"__float__\": \"NaN\"}"}};
  std::string out;
  out.reserve(text.size());
  bool in_string = false;
  for (size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < text.size()) out += text[++i];  // an escaped character, e.g. \"
      else if (c == '"') in_string = false;
      ++i;
      continue;
    }
    if (c == '"') in_string = true;
    bool replaced = false;
    for (const auto& [literal, object] : kLiterals) {
      const size_t n = std::char_traits<char>::length(literal);
      if (text.compare(i, n, literal) == 0) {
        out += object;
        i += n;
        replaced = true;
        break;
      }
    }
    if (!replaced) out += text[i++];
  }
  return out;
}

nlohmann::json read_hf_json(const std::filesystem::path& path, const std::string& what) {
  return parse_json(python_floats_to_json(read_whole_file(path, what)), what + " " + path.string(),
                    " Fix the file or write it again.");
}

std::optional<double> hf_float(const nlohmann::json& v) {
  if (v.is_number()) return v.get<double>();
  if (!v.is_object() || v.size() != 1 || !v.contains("__float__") || !v["__float__"].is_string())
    return std::nullopt;
  const std::string s = v["__float__"].get<std::string>();
  constexpr double inf = std::numeric_limits<double>::infinity();
  if (s == "Infinity" || s == "inf") return inf;
  if (s == "-Infinity" || s == "-inf") return -inf;
  if (s == "NaN" || s == "nan") return std::numeric_limits<double>::quiet_NaN();
  return std::nullopt;
}

HfConfigFields::HfConfigFields(const nlohmann::json& j, std::string source) : j_(j), source_(std::move(source)) {
  if (!j.is_object()) bad(std::string("is a JSON ") + j.type_name() + ", not an object.");
}

void HfConfigFields::bad(const std::string& what) const { throw Error("Hugging Face config " + source_ + ": " + what); }

void HfConfigFields::size(const char* key, int64_t& out) const {
  if (!j_.contains(key)) return;
  const auto& v = j_.at(key);
  if (!v.is_number_integer() || v.get<int64_t>() <= 0 || v.get<int64_t>() > 2147483647)
    bad(std::string("\"") + key + "\" is " + json_excerpt(v) + "; expected a positive integer below 2^31.");
  out = v.get<int64_t>();
}

void HfConfigFields::count(const char* key, int64_t& out) const {
  if (!j_.contains(key)) return;
  const auto& v = j_.at(key);
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 2147483647)
    bad(std::string("\"") + key + "\" is " + json_excerpt(v) + "; expected an integer in [0, 2^31).");
  out = v.get<int64_t>();
}

void HfConfigFields::text(const char* key, std::string& out) const {
  if (!j_.contains(key)) return;
  const auto& v = j_.at(key);
  if (!v.is_string()) bad(std::string("\"") + key + "\" is " + json_excerpt(v) + "; expected a string.");
  out = v.get<std::string>();
}

void HfConfigFields::model_type(const char* type, const char* what) const {
  const auto t = j_.find("model_type");
  if (t == j_.end() || *t != type)
    bad("\"model_type\" is " + (t == j_.end() ? std::string("missing") : json_excerpt(*t)) + "; expected \"" + type +
        "\" (transformers " + what + ").");
}

bool HfConfigFields::layer_types(const char* key, int64_t n, std::vector<bool>& out) const {
  if (!j_.contains(key) || j_.at(key).is_null()) return false;
  const auto& v = j_.at(key);
  if (!v.is_array()) bad(std::string("\"") + key + "\" is " + json_excerpt(v) + "; expected a list of \"mamba\" / \"attention\".");
  if (static_cast<int64_t>(v.size()) != n)
    bad(std::string("\"") + key + "\" lists " + std::to_string(v.size()) + " layers; \"num_hidden_layers\" is " +
        std::to_string(n) + ".");
  out.clear();
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] != "mamba" && v[i] != "attention")
      bad(std::string("\"") + key + "\"[" + std::to_string(i) + "] is " + json_excerpt(v[i]) +
          ", an unknown layer type; Magellano runs \"mamba\" and \"attention\" layers.");
    out.push_back(v[i] == "attention");
  }
  return true;
}

void HfConfigFields::attention_heads(int64_t hidden, int64_t heads, int64_t kv_heads) const {
  if (hidden % heads)
    bad("\"num_attention_heads\" " + std::to_string(heads) + " does not divide \"hidden_size\" " +
        std::to_string(hidden) + ".");
  if (heads % kv_heads)
    bad("\"num_key_value_heads\" " + std::to_string(kv_heads) + " does not divide \"num_attention_heads\" " +
        std::to_string(heads) + ".");
}

void HfConfigFields::absent(const char* key, const std::string& why) const {
  if (j_.contains(key) && !j_.at(key).is_null())
    bad(std::string("\"") + key + "\" is " + json_excerpt(j_.at(key)) + "; " + why);
}

void HfConfigFields::flag(const char* key, bool& out) const {
  if (!j_.contains(key)) return;
  const auto& v = j_.at(key);
  if (!v.is_boolean()) bad(std::string("\"") + key + "\" is " + json_excerpt(v) + "; expected true or false.");
  out = v.get<bool>();
}

void HfConfigFields::number(const char* key, double& out, bool zero_ok) const {
  if (!j_.contains(key)) return;
  const auto& v = j_.at(key);
  if (!v.is_number() || !(zero_ok ? v.get<double>() >= 0 : v.get<double>() > 0) || !std::isfinite(v.get<double>()))
    bad(std::string("\"") + key + "\" is " + json_excerpt(v) + "; expected a " +
        (zero_ok ? "number >= 0." : "positive number."));
  out = v.get<double>();
}

std::string hf_model_type(const std::filesystem::path& dir) {
  try {
    const auto path = dir / "config.json";
    if (!std::filesystem::is_regular_file(path)) return "";
    const auto j = read_hf_json(path, "Hugging Face config");
    const auto it = j.is_object() ? j.find("model_type") : j.end();
    return it != j.end() && it->is_string() ? it->get<std::string>() : "";
  } catch (const std::exception&) {
    return "";
  }
}

}  // namespace magellano::io
