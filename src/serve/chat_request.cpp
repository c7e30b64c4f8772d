#include "magellano/serve/chat_request.hpp"

#include <algorithm>
#include <set>

namespace magellano::serve {

using nlohmann::json;
using nlohmann::ordered_json;

namespace {

ApiError bad(const std::string& param, const std::string& message) { return ApiError(400, message, param); }

// A message's tool_calls ([{"id", "type": "function", "function": {"name", "arguments"}}]), checked;
// an "arguments" string holding a JSON object becomes that object, as the templates expect a
// mapping (they write it with tojson; vLLM converts it the same way); other strings stay.
void check_tool_calls(ordered_json& calls, const std::string& at) {
  if (!calls.is_array())
    throw bad(at, "'" + at + "' must be a list of {\"id\", \"type\": \"function\", \"function\": {\"name\", "
                  "\"arguments\"}} objects.");
  for (size_t k = 0; k < calls.size(); ++k) {
    const std::string c = at + "[" + std::to_string(k) + "]";
    ordered_json& call = calls[k];
    if (!call.is_object()) throw bad(c, "'" + c + "' must be an object {\"id\", \"type\", \"function\"}.");
    if (call.contains("id") && !call["id"].is_string()) throw bad(c + ".id", "'" + c + ".id' must be a string.");
    if (call.contains("type") && call["type"] != "function")
      throw bad(c + ".type", "'" + c + ".type' must be \"function\".");
    if (!call.contains("function") || !call["function"].is_object())
      throw bad(c + ".function", "'" + c + ".function' is required: {\"name\", \"arguments\"}.");
    ordered_json& f = call["function"];
    if (!f.contains("name") || !f["name"].is_string())
      throw bad(c + ".function.name", "'" + c + ".function.name' must be a string.");
    if (!f.contains("arguments") || !(f["arguments"].is_string() || f["arguments"].is_object()))
      throw bad(c + ".function.arguments", "'" + c + ".function.arguments' must be a string of JSON (or an object).");
    if (f["arguments"].is_string()) {
      try {
        ordered_json args = ordered_json::parse(f["arguments"].get<std::string>());
        if (args.is_object()) f["arguments"] = std::move(args);
      } catch (const ordered_json::exception&) {
      }
    }
  }
}

void check_messages(ordered_json& messages) {
  if (!messages.is_array() || messages.empty())
    throw bad("messages", "'messages' must be a non-empty list of {\"role\", \"content\"} objects, got " +
                              json_type_name(json::parse(messages.dump())) + ".");
  for (size_t i = 0; i < messages.size(); ++i) {
    ordered_json& m = messages[i];
    const std::string at = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) throw bad(at, "'" + at + "' must be an object with \"role\" and \"content\".");
    if (!m.contains("role") || !m["role"].is_string() || m["role"].get<std::string>().empty())
      throw bad(at + ".role", "'" + at + ".role' is required: a string such as \"system\", \"user\" or \"assistant\".");
    const bool calls = m.contains("tool_calls") && !m["tool_calls"].is_null();
    if (calls) {
      if (m["role"] != "assistant") throw bad(at + ".tool_calls", "'" + at + ".tool_calls' is only allowed in assistant messages.");
      check_tool_calls(m["tool_calls"], at + ".tool_calls");
    }
    if (m["role"] == "tool" && !(m.contains("tool_call_id") && m["tool_call_id"].is_string()))
      throw bad(at + ".tool_call_id", "'" + at + ".tool_call_id' is required in tool messages: the id of the call answered.");
    if (!m.contains("content")) {
      if (calls) continue;  // an assistant message of tool calls only
      throw bad(at + ".content", "'" + at + ".content' is required: a string, a list of text parts, or null.");
    }
    const ordered_json& c = m["content"];
    if (c.is_string() || c.is_null()) continue;
    if (!c.is_array())
      throw bad(at + ".content", "'" + at + ".content' must be a string, a list of {\"type\": \"text\", \"text\": ...} "
                                 "parts, or null.");
    for (size_t k = 0; k < c.size(); ++k) {
      const std::string part = at + ".content[" + std::to_string(k) + "]";
      const ordered_json& p = c[k];
      if (!p.is_object() || !p.contains("type") || !p["type"].is_string())
        throw bad(part, "'" + part + "' must be an object {\"type\": \"text\", \"text\": ...}.");
      if (p["type"] != "text")
        throw bad(part + ".type", "'" + part + ".type' is '" + p["type"].get<std::string>() +
                                      "'; this server takes text parts only.");
      if (!p.contains("text") || !p["text"].is_string())
        throw bad(part + ".text", "'" + part + ".text' must be a string.");
    }
  }
}

// tools: [{"type": "function", "function": {"name", "description"?, "parameters"?}}]; returns the names.
std::vector<std::string> check_tools(const ordered_json& tools) {
  if (!tools.is_array())
    throw bad("tools", "'tools' must be a list of tool definitions, got " + json_type_name(json::parse(tools.dump())) + ".");
  std::vector<std::string> names;
  for (size_t k = 0; k < tools.size(); ++k) {
    const std::string at = "tools[" + std::to_string(k) + "]";
    const ordered_json& t = tools[k];
    if (!t.is_object() || t.value("type", json()) != "function")
      throw bad(at + ".type", "'" + at + "' must be {\"type\": \"function\", \"function\": {...}}: only function tools are supported.");
    if (!t.contains("function") || !t["function"].is_object())
      throw bad(at + ".function", "'" + at + ".function' is required: {\"name\", \"description\", \"parameters\"}.");
    const ordered_json& f = t["function"];
    if (!f.contains("name") || !f["name"].is_string() || f["name"].get<std::string>().empty())
      throw bad(at + ".function.name", "'" + at + ".function.name' must be a non-empty string.");
    if (f.contains("description") && !f["description"].is_string() && !f["description"].is_null())
      throw bad(at + ".function.description", "'" + at + ".function.description' must be a string.");
    if (f.contains("parameters") && !f["parameters"].is_object() && !f["parameters"].is_null())
      throw bad(at + ".function.parameters", "'" + at + ".function.parameters' must be a JSON schema object.");
    names.push_back(f["name"].get<std::string>());
  }
  return names;
}

// tool_choice: "none" (the tools are left out of the prompt; no calls are read), "auto" (the
// default with tools), or, refused with the reason, "required" / {"type": "function", "function":
// {"name"}}: nothing here can force the model to call a tool.
bool read_tool_choice(const json& body, const std::vector<std::string>& names, bool has_tools) {
  if (!body.contains("tool_choice") || body["tool_choice"].is_null()) return true;
  const json& c = body["tool_choice"];
  if (!has_tools) throw bad("tool_choice", "'tool_choice' is only allowed when 'tools' are given.");
  if (c == "none") return false;
  if (c == "auto") return true;
  const bool named = c.is_object() && c.value("type", json()) == "function" && c.contains("function") &&
                     c["function"].is_object() && c["function"].contains("name") && c["function"]["name"].is_string();
  if (c != "required" && !named)
    throw bad("tool_choice", "'tool_choice' must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", "
                             "\"function\": {\"name\": ...}}.");
  if (named && std::find(names.begin(), names.end(), c["function"]["name"].get<std::string>()) == names.end())
    throw bad("tool_choice", "'tool_choice' names the function '" + c["function"]["name"].get<std::string>() +
                             "', which is not in 'tools'.");
  throw bad("tool_choice", std::string("'tool_choice' ") + (named ? "naming a function" : "\"required\"") +
                           " is not supported: this server cannot force a tool call (no constrained decoding); use "
                           "\"auto\" or \"none\".");
}

}  // namespace

ChatRequest parse_chat_request(const std::string& text, const std::string& model_id, const ServeLimits& limits) {
  json body = parse_body(text);
  static const std::set<std::string> known = {
      "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "n", "stop",
      "seed", "stream", "stream_options", "user", "presence_penalty", "frequency_penalty", "logit_bias",
      "repetition_penalty", "tools", "tool_choice", "logprobs", "top_logprobs", "response_format",
      "parallel_tool_calls"};
  for (const auto& [key, value] : body.items())
    if (!known.count(key)) throw bad(key, "Unrecognized request argument supplied: '" + key + "'.");
  check_model(body, model_id);
  if (body.contains("max_completion_tokens") && !body["max_completion_tokens"].is_null()) {
    if (body.contains("max_tokens") && !body["max_tokens"].is_null())
      throw bad("max_tokens", "Give 'max_tokens' or 'max_completion_tokens', not both.");
    body["max_tokens"] = body["max_completion_tokens"];
    try {
      ChatRequest probe;
      read_sampling_fields(json{{"max_tokens", body["max_tokens"]}}, probe.params, limits);
    } catch (const ApiError& e) {  // the message names max_tokens; name the field the client sent
      std::string m = e.what();
      for (size_t p; (p = m.find("'max_tokens'")) != std::string::npos;) m.replace(p, 12, "'max_completion_tokens'");
      throw bad("max_completion_tokens", m);
    }
  }
  ChatRequest r;
  read_sampling_fields(body, r.params, limits);
  const bool logprobs = boolean_field(body, "logprobs");
  const auto top = integer_field(body, "top_logprobs", 0, 20);
  if (top && !logprobs) throw bad("top_logprobs", "'top_logprobs' needs 'logprobs': true.");
  if (logprobs) r.params.logprobs = top.value_or(0);
  if (body.contains("response_format") && !body["response_format"].is_null() &&
      !(body["response_format"].is_object() && body["response_format"].value("type", "") == "text"))
    throw bad("response_format", "'response_format' other than {\"type\": \"text\"} is not supported by this server.");
  if (body.contains("parallel_tool_calls") && !body["parallel_tool_calls"].is_null() && !body["parallel_tool_calls"].is_boolean())
    throw bad("parallel_tool_calls", "'parallel_tool_calls' must be true or false.");

  const ordered_json ordered = ordered_json::parse(text);  // key order as sent
  if (!ordered.contains("messages") || ordered["messages"].is_null())
    throw bad("messages", "'messages' is required: a list of {\"role\", \"content\"} objects.");
  r.messages = ordered["messages"];
  check_messages(r.messages);
  const bool has_tools = ordered.contains("tools") && !ordered["tools"].is_null();
  const std::vector<std::string> names = has_tools ? check_tools(ordered["tools"]) : std::vector<std::string>();
  r.tool_calls = read_tool_choice(body, names, has_tools) && has_tools;
  if (r.tool_calls) r.tools = ordered["tools"];
  return r;
}

}  // namespace magellano::serve
