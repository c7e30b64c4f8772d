#include "magellano/chat/chat_template.hpp"

#include <fstream>
#include <sstream>

#include "magellano/runtime/error.hpp"

namespace magellano::chat {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

namespace {

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw Error("chat template: cannot read " + p.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::optional<ordered_json> read_json_file(const fs::path& p) {
  if (!fs::exists(p)) return std::nullopt;
  try {
    return ordered_json::parse(read_text(p));
  } catch (const ordered_json::exception& e) {
    throw Error(p.string() + " is not valid JSON (" + e.what() + ")");
  }
}

std::shared_ptr<const jinja::Template> compile(const std::string& text, const std::string& origin) {
  try {
    return std::make_shared<const jinja::Template>(text);
  } catch (const jinja::TemplateError& e) {
    throw jinja::TemplateError(std::string(e.what()) + " (in " + origin + ")");
  }
}

// A special token's text: a string, or an AddedToken dict's "content".
std::optional<std::string> token_text(const ordered_json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return std::nullopt;
}

}  // namespace

std::optional<ChatTemplate> load_chat_template(const fs::path& dir) {
  ChatTemplate t;
  const auto config = read_json_file(dir / "tokenizer_config.json");
  if (config && !config->is_object()) throw Error((dir / "tokenizer_config.json").string() + " is not a JSON object");
  if (fs::exists(dir / "chat_template.jinja")) {
    t.origin = (dir / "chat_template.jinja").string();
    t.main_source = read_text(dir / "chat_template.jinja");
    t.main = compile(t.main_source, t.origin);
  } else if (auto j = read_json_file(dir / "chat_template.json")) {
    t.origin = (dir / "chat_template.json").string();
    if (!j->is_object() || !j->contains("chat_template") || !(*j)["chat_template"].is_string())
      throw Error(t.origin + ": expected {\"chat_template\": \"<Jinja text>\"}");
    t.main_source = (*j)["chat_template"].get<std::string>();
    t.main = compile(t.main_source, t.origin);
  } else if (config && config->contains("chat_template") && !(*config)["chat_template"].is_null()) {
    t.origin = (dir / "tokenizer_config.json").string();
    const ordered_json& ct = (*config)["chat_template"];
    if (ct.is_string()) {
      t.main_source = ct.get<std::string>();
      t.main = compile(t.main_source, t.origin);
    } else if (ct.is_array()) {
      for (const auto& e : ct) {
        if (!e.is_object() || !e.contains("name") || !e["name"].is_string() || !e.contains("template") ||
            !e["template"].is_string())
          throw Error(t.origin + ": \"chat_template\" list entries must be {\"name\": ..., \"template\": ...}");
        const std::string name = e["name"].get<std::string>();
        if (name == "default") {
          t.main_source = e["template"].get<std::string>();
          t.main = compile(t.main_source, t.origin + " (\"default\")");
        } else if (name == "tool_use") {
          t.tool_use_source = e["template"].get<std::string>();
          t.tool_use = compile(t.tool_use_source, t.origin + " (\"tool_use\")");
        }
        else t.unused_names.push_back(name);
      }
      if (!t.main)
        throw Error(t.origin + ": \"chat_template\" is a list of named templates without one named \"default\"");
    } else {
      throw Error(t.origin + ": \"chat_template\" must be a string or a list of {\"name\", \"template\"}");
    }
  } else {
    return std::nullopt;
  }
  const auto special_map = read_json_file(dir / "special_tokens_map.json");
  for (const char* name : {"bos_token", "eos_token", "unk_token", "pad_token"}) {
    std::optional<std::string> v;
    if (config && config->contains(name)) v = token_text((*config)[name]);
    if (!v && special_map && special_map->is_object() && special_map->contains(name)) v = token_text((*special_map)[name]);
    if (v) t.special_tokens[name] = *v;
  }
  return t;
}

std::string render_chat(const ChatTemplate& t, const ordered_json& messages, const ordered_json& tools,
                        bool add_generation_prompt) {
  jinja::Dict vars;
  vars.set("messages", jinja::from_json(messages));
  vars.set("tools", jinja::from_json(tools));
  vars.set("documents", jinja::Value::none());
  vars.set("add_generation_prompt", jinja::Value::boolean(add_generation_prompt));
  for (const auto& [k, v] : t.special_tokens) vars.set(k, jinja::Value::string(v));
  const auto& tmpl = !tools.is_null() && t.tool_use ? t.tool_use : t.main;
  return tmpl->render(vars);
}

const std::string& chosen_source(const ChatTemplate& t, bool with_tools) {
  return with_tools && t.tool_use ? t.tool_use_source : t.main_source;
}

}  // namespace magellano::chat
