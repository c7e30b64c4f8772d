#include "magellano/serve/chat_request.hpp"

#include <set>

namespace magellano::serve {

using nlohmann::json;
using nlohmann::ordered_json;

namespace {

ApiError bad(const std::string& param, const std::string& message) { return ApiError(400, message, param); }

void check_messages(const ordered_json& messages) {
  if (!messages.is_array() || messages.empty())
    throw bad("messages", "'messages' must be a non-empty list of {\"role\", \"content\"} objects, got " +
                              json_type_name(json::parse(messages.dump())) + ".");
  for (size_t i = 0; i < messages.size(); ++i) {
    const ordered_json& m = messages[i];
    const std::string at = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) throw bad(at, "'" + at + "' must be an object with \"role\" and \"content\".");
    if (!m.contains("role") || !m["role"].is_string() || m["role"].get<std::string>().empty())
      throw bad(at + ".role", "'" + at + ".role' is required: a string such as \"system\", \"user\" or \"assistant\".");
    if (!m.contains("content"))
      throw bad(at + ".content", "'" + at + ".content' is required: a string, a list of text parts, or null.");
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
  if (body.contains("logprobs") && !body["logprobs"].is_null() && !(body["logprobs"].is_boolean() && !body["logprobs"].get<bool>()))
    throw bad("logprobs", "'logprobs' is not supported for chat completions by this server; use POST /v1/completions.");
  if (body.contains("top_logprobs") && !body["top_logprobs"].is_null() && body["top_logprobs"] != 0)
    throw bad("top_logprobs", "'top_logprobs' is not supported for chat completions by this server.");
  if (body.contains("response_format") && !body["response_format"].is_null() &&
      !(body["response_format"].is_object() && body["response_format"].value("type", "") == "text"))
    throw bad("response_format", "'response_format' other than {\"type\": \"text\"} is not supported by this server.");
  if (body.contains("tool_choice") && !body["tool_choice"].is_null() && body["tool_choice"] != "auto" &&
      body["tool_choice"] != "none")
    throw bad("tool_choice", "'tool_choice' may only be \"auto\" or \"none\": this server does not force tool calls.");
  if (body.contains("parallel_tool_calls") && !body["parallel_tool_calls"].is_null() && !body["parallel_tool_calls"].is_boolean())
    throw bad("parallel_tool_calls", "'parallel_tool_calls' must be true or false.");

  const ordered_json ordered = ordered_json::parse(text);  // key order as sent
  if (!ordered.contains("messages") || ordered["messages"].is_null())
    throw bad("messages", "'messages' is required: a list of {\"role\", \"content\"} objects.");
  check_messages(ordered["messages"]);
  r.messages = ordered["messages"];
  r.tools = ordered.contains("tools") ? ordered["tools"] : ordered_json();
  if (!r.tools.is_null() && !r.tools.is_array())
    throw bad("tools", "'tools' must be a list of tool definitions, got " + json_type_name(body["tools"]) + ".");
  return r;
}

}  // namespace magellano::serve
