#include "magellano/serve/tool_calls.hpp"

#include <nlohmann/json.hpp>
#include <optional>

namespace magellano::serve {

using nlohmann::json;

namespace {

constexpr const char* kSpace = " \t\r\n";

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(kSpace);
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(kSpace) - a + 1);
}

std::optional<json> parse_json(const std::string& text) {
  try {
    return json::parse(text);
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

// {"name": string, <args_key>: object} -> a call; nullopt for anything else. args_key2: an
// alternative key ("" for none).
std::optional<ToolCall> call_of(const json& j, const char* args_key, const char* args_key2 = "") {
  if (!j.is_object() || !j.contains("name") || !j["name"].is_string() || j["name"].get<std::string>().empty())
    return std::nullopt;
  const char* key = j.contains(args_key) ? args_key : args_key2;
  json args = json::object();  // a call without arguments takes none
  if (*key && j.contains(key)) args = j[key];
  if (!args.is_object()) return std::nullopt;
  return ToolCall{j["name"].get<std::string>(), args.dump(-1, ' ', false, json::error_handler_t::replace)};
}

ParsedReply plain(const std::string& reply) { return ParsedReply{reply, {}}; }

ParsedReply parse_hermes(const std::string& reply) {
  static const std::string open = "<tool_call>", close = "</tool_call>";
  ParsedReply out;
  std::string outside;
  size_t pos = 0;
  for (;;) {
    const size_t a = reply.find(open, pos);
    if (a == std::string::npos) {
      outside += reply.substr(pos);
      break;
    }
    outside += reply.substr(pos, a - pos);
    const size_t body = a + open.size();
    const size_t b = reply.find(close, body);
    const auto j = parse_json(reply.substr(body, b == std::string::npos ? std::string::npos : b - body));
    const auto call = j ? call_of(*j, "arguments", "parameters") : std::nullopt;
    if (!call) return plain(reply);
    out.calls.push_back(*call);
    if (b == std::string::npos) break;  // the last call, unclosed
    pos = b + close.size();
  }
  if (out.calls.empty()) return plain(reply);
  out.content = trim(outside);
  return out;
}

ParsedReply parse_llama3_json(const std::string& reply) {
  std::string text = trim(reply);
  static const std::string tag = "<|python_tag|>";
  if (text.rfind(tag, 0) == 0) text = trim(text.substr(tag.size()));
  if (text.empty() || text[0] != '{') return plain(reply);
  ParsedReply out;
  // Calls separated by ";": split at each ";" that ends a complete JSON object.
  size_t start = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i < text.size() && text[i] != ';') continue;
    const auto j = parse_json(text.substr(start, i - start));
    if (!j) {
      if (i == text.size()) return plain(reply);
      continue;  // a ";" inside a string: keep reading
    }
    const auto call = call_of(*j, "parameters", "arguments");
    if (!call) return plain(reply);
    out.calls.push_back(*call);
    start = i + 1;
  }
  return out;
}

// [TOOL_CALLS][{"name", "arguments"}, ...] (v3 tokenizers), or one [TOOL_CALLS]name[ARGS]{...} per
// call (v11 tokenizers: Mistral Small 3.2, Magistral).
ParsedReply parse_mistral(const std::string& reply) {
  static const std::string tag = "[TOOL_CALLS]", args_tag = "[ARGS]";
  const size_t a = reply.find(tag);
  if (a == std::string::npos) return plain(reply);
  ParsedReply out;
  out.content = trim(reply.substr(0, a));
  const std::string rest = trim(reply.substr(a + tag.size()));
  if (!rest.empty() && rest[0] == '[') {
    const auto j = parse_json(rest);
    if (!j || !j->is_array() || j->empty()) return plain(reply);
    for (const json& e : *j) {
      const auto call = call_of(e, "arguments");
      if (!call) return plain(reply);
      out.calls.push_back(*call);
    }
    return out;
  }
  for (size_t pos = a; pos != std::string::npos;) {
    const size_t start = pos + tag.size();
    const size_t next = reply.find(tag, start);
    const std::string seg = reply.substr(start, next == std::string::npos ? std::string::npos : next - start);
    const size_t args = seg.find(args_tag);
    if (args == std::string::npos) return plain(reply);
    const auto j = parse_json(seg.substr(args + args_tag.size()));
    const auto call = j ? call_of(json{{"name", trim(seg.substr(0, args))}, {"arguments", *j}}, "arguments") : std::nullopt;
    if (!call) return plain(reply);
    out.calls.push_back(*call);
    pos = next;
  }
  return out;
}

}  // namespace

ToolCallSyntax tool_call_syntax(const std::string& source) {
  if (source.find("<tool_call>") != std::string::npos) return ToolCallSyntax::hermes;
  if (source.find("[TOOL_CALLS]") != std::string::npos) return ToolCallSyntax::mistral;
  if (source.find("<|python_tag|>") != std::string::npos) return ToolCallSyntax::llama3_json;
  return ToolCallSyntax::none;
}

const char* tool_call_syntax_name(ToolCallSyntax s) {
  switch (s) {
    case ToolCallSyntax::hermes: return "hermes";
    case ToolCallSyntax::llama3_json: return "llama3_json";
    case ToolCallSyntax::mistral: return "mistral";
    case ToolCallSyntax::none: break;
  }
  return "none";
}

ParsedReply parse_tool_calls(ToolCallSyntax syntax, const std::string& reply) {
  switch (syntax) {
    case ToolCallSyntax::hermes: return parse_hermes(reply);
    case ToolCallSyntax::llama3_json: return parse_llama3_json(reply);
    case ToolCallSyntax::mistral: return parse_mistral(reply);
    case ToolCallSyntax::none: break;
  }
  return plain(reply);
}

}  // namespace magellano::serve
