#include "magellano/train/adapter.hpp"

#include <algorithm>
#include <set>

#include "magellano/io/json_file.hpp"
#include "magellano/io/safetensors.hpp"
#include "magellano/io/safetensors_device.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::train {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The kinds whose Linears are named w1, w2, w3 under a module, and the PEFT suffix prefix of
// each: "experts" -> w1 (every experts.{e}.w1), "shared_expert" -> shared_expert.w1, "mlp" ->
// mlp.w1. (PEFT matches a target by module-name suffix, so "w1" also matches the other two.)
const std::pair<const char*, const char*> kMlpKinds[] = {{"experts", ""}, {"shared_expert", "shared_expert."}, {"mlp", "mlp."}};

json peft_targets(const std::vector<std::string>& kinds) {
  json t = json::array();
  for (const auto& k : kinds) {
    bool mlp = false;
    for (const auto& [kind, prefix] : kMlpKinds)
      if (k == kind)
        for (const char* w : {"w1", "w2", "w3"}) t.push_back(std::string(prefix) + w), mlp = true;
    if (!mlp) t.push_back(k);
  }
  return t;
}

// The kind of a PEFT target name, or "" when none.
std::string kind_of_target(const std::string& s) {
  for (const auto& [kind, prefix] : kMlpKinds)
    for (const char* w : {"w1", "w2", "w3"})
      if (s == std::string(prefix) + w) return kind;
  const auto& kinds = nn::lora_target_kinds();
  return std::find(kinds.begin(), kinds.end(), s) != kinds.end() ? s : "";
}

}  // namespace

json adapter_config_json(const LoRASection& l, const std::string& base) {
  return json{{"alpha_pattern", json::object()},
              {"auto_mapping", nullptr},
              {"base_model_name_or_path", base.empty() ? json(nullptr) : json(base)},
              {"bias", "none"},
              {"fan_in_fan_out", false},
              {"inference_mode", true},
              {"init_lora_weights", true},
              {"layers_pattern", nullptr},
              {"layers_to_transform", nullptr},
              {"lora_alpha", l.alpha},
              {"lora_dropout", l.dropout},
              {"modules_to_save", nullptr},
              {"peft_type", "LORA"},
              {"r", l.rank},
              {"rank_pattern", json::object()},
              {"revision", nullptr},
              {"target_modules", peft_targets(l.target_modules)},
              {"task_type", "CAUSAL_LM"},
              {"use_dora", false},
              {"use_rslora", false}};
}

LoRASection read_adapter_config(const fs::path& dir, std::string* base) {
  const fs::path file = dir / "adapter_config.json";
  const json j = io::read_json(file, "adapter config");
  auto bad = [&](const std::string& what) -> Error {
    return Error(file.string() + ": " + what + "; expected a PEFT LoRA adapter (as `magellano train` "
                 "with a lora section or PEFT's save_pretrained writes it).");
  };
  if (!j.is_object()) throw bad("it is not a JSON object");
  // A key that is present must have its type (nlohmann's value() would throw its own text).
  const auto flag = [&](const char* key) {
    if (!j.contains(key) || j[key].is_null()) return false;
    if (!j[key].is_boolean()) throw bad(std::string("'") + key + "' must be true or false");
    return j[key].get<bool>();
  };
  const auto number = [&](const char* key, double fallback) {
    if (!j.contains(key)) return fallback;
    if (!j[key].is_number()) throw bad(std::string("'") + key + "' must be a number");
    return j[key].get<double>();
  };
  if (!j.contains("peft_type") || j["peft_type"] != "LORA") throw bad("peft_type is not \"LORA\"");
  // The same range as the config's lora.rank.
  if (!j.contains("r") || !j["r"].is_number_integer() || j["r"].get<int64_t>() < 1 || j["r"].get<int64_t>() > 65536)
    throw bad("'r' must be an integer in [1, 65536]");
  if (flag("fan_in_fan_out")) throw bad("fan_in_fan_out weights are not supported");
  if (j.contains("bias") && j["bias"] != "none") throw bad("only bias \"none\" is supported");
  if (flag("use_dora")) throw bad("DoRA adapters are not supported");
  if (flag("use_rslora")) throw bad("rsLoRA scaling is not supported");
  if (j.contains("rank_pattern") && !j["rank_pattern"].empty()) throw bad("per-module ranks (rank_pattern) are not supported");
  if (j.contains("alpha_pattern") && !j["alpha_pattern"].empty()) throw bad("per-module alphas (alpha_pattern) are not supported");
  LoRASection l;
  l.rank = j["r"].get<int64_t>();
  l.alpha = number("lora_alpha", 8.0);
  l.dropout = number("lora_dropout", 0.0);
  if (!(l.alpha > 0) || l.alpha > 3.4e38) throw bad("'lora_alpha' must be a positive number");
  if (!(l.dropout >= 0 && l.dropout < 1)) throw bad("'lora_dropout' must be in [0, 1)");
  l.target_modules.clear();
  if (!j.contains("target_modules") || !j["target_modules"].is_array()) throw bad("target_modules must be a list");
  std::set<std::string> kinds;
  for (const auto& t : j["target_modules"]) {
    const std::string s = t.is_string() ? t.get<std::string>() : "";
    const std::string kind = kind_of_target(s);
    if (kind.empty()) throw bad("unknown target module " + json_excerpt(t));
    kinds.insert(kind);
  }
  for (const auto& k : nn::lora_target_kinds())
    if (kinds.count(k)) l.target_modules.push_back(k);
  if (base && j.contains("base_model_name_or_path") && j["base_model_name_or_path"].is_string())
    *base = j["base_model_name_or_path"].get<std::string>();
  return l;
}

void save_adapter_weights(const fs::path& file, const nn::Model& model) {
  std::vector<std::pair<std::string, io::StTensor>> tensors;
  for (const auto& p : model.lora_parameters()) tensors.emplace_back(kPeftPrefix + p.name, io::to_st(p.tensor));
  if (tensors.empty()) throw Error("save_adapter: the model has no LoRA adapters.");
  io::write_safetensors(file, tensors, {{"format", "pt"}});
}

void save_adapter(const fs::path& dir, const nn::Model& model, const LoRASection& lora, const std::string& base) {
  fs::create_directories(dir);
  save_adapter_weights(dir / "adapter_model.safetensors", model);
  io::write_json_atomically(dir / "adapter_config.json", adapter_config_json(lora, base));
}

void load_adapter_weights(const fs::path& dir, const nn::Model& model) {
  const fs::path file = dir / "adapter_model.safetensors";
  const auto reader = io::SafetensorsReader::open(file);
  std::set<std::string> used;
  for (const auto& p : model.lora_parameters()) {
    const std::string name = kPeftPrefix + p.name;
    if (!reader.contains(name))
      throw Error(file.string() + " has no tensor '" + name + "': the adapter does not match this "
                  "model's LoRA targets (check adapter_config.json's target_modules and r).");
    io::load_into(reader, name, p.tensor);
    used.insert(name);
  }
  for (const auto& n : reader.names())
    if (!used.count(n))
      throw Error(file.string() + " holds '" + n + "', which this model has no adapter for: it was "
                  "trained for another model or other target modules.");
}

LoadedModel load_model_with_adapter(const fs::path& checkpoint_dir, const fs::path& adapter_dir,
                                    Context& ctx, nn::WeightStorage base_precision) {
  LoRASection lora = read_adapter_config(adapter_dir);
  lora.base_precision = base_precision;
  LoadedModel out = load_model(checkpoint_dir, ctx, &lora);
  load_adapter_weights(adapter_dir, *out.model);
  return out;
}

}  // namespace magellano::train
