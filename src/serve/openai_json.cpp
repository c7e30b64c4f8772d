#include "magellano/serve/openai_json.hpp"

namespace magellano::serve {

using nlohmann::json;

const char* finish_reason_name(generate::FinishReason r) {
  return r == generate::FinishReason::length ? "length" : "stop";
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

namespace {
json usage_json(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens}, {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens}};
}
}  // namespace

namespace {
std::string token_text(const generate::TokenBytes& token_bytes, int32_t id) { return token_bytes ? token_bytes(id) : std::string(); }

// {"token", "logprob", "bytes"} of one id (the bytes as a list of 0..255).
json chat_token_json(const generate::TokenBytes& token_bytes, int32_t id, double logprob) {
  const std::string s = token_text(token_bytes, id);
  json bytes = json::array();
  for (unsigned char b : s) bytes.push_back(static_cast<int>(b));
  return {{"token", s}, {"logprob", logprob}, {"bytes", bytes}};
}
}  // namespace

json chat_logprobs_json(const std::vector<TokenLogprob>& lps, const generate::TokenBytes& token_bytes) {
  json content = json::array();
  for (const auto& t : lps) {
    json e = chat_token_json(token_bytes, t.id, t.logprob);
    json top = json::array();
    for (const auto& [id, lp] : t.top) top.push_back(chat_token_json(token_bytes, id, lp));
    e["top_logprobs"] = top;
    content.push_back(e);
  }
  return {{"content", content}, {"refusal", nullptr}};
}

json tool_calls_json(const std::vector<ToolCall>& calls, const std::string& id_base, bool with_index) {
  json out = json::array();
  for (size_t k = 0; k < calls.size(); ++k) {
    json c = {{"id", "call_" + id_base + "_" + std::to_string(k)}, {"type", "function"},
              {"function", {{"name", calls[k].name}, {"arguments", calls[k].arguments}}}};
    if (with_index) c["index"] = k;
    out.push_back(c);
  }
  return out;
}

json logprobs_json(const std::vector<TokenLogprob>& lps, const generate::TokenBytes& token_bytes, size_t offset) {
  auto text = [&](int32_t id) { return token_text(token_bytes, id); };
  json tokens = json::array(), values = json::array(), tops = json::array(), offsets = json::array();
  for (const auto& t : lps) {
    const std::string s = text(t.id);
    tokens.push_back(s);
    values.push_back(t.logprob);
    json top = json::object();
    for (const auto& [id, lp] : t.top) top[text(id)] = lp;
    tops.push_back(top);
    offsets.push_back(offset);
    offset += s.size();
  }
  return {{"tokens", tokens}, {"token_logprobs", values}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

json completion_json(const ResponseHeader& h, const std::vector<ChoiceResult>& choices, const Usage& usage,
                     const generate::TokenBytes& token_bytes, size_t echo_bytes) {
  json cs = json::array();
  for (size_t i = 0; i < choices.size(); ++i) {
    const auto& c = choices[i];
    cs.push_back({{"index", i}, {"text", c.text},
                  {"logprobs", c.has_logprobs ? logprobs_json(c.logprobs, token_bytes, echo_bytes) : json(nullptr)},
                  {"finish_reason", finish_reason_name(c.finish)}});
  }
  return {{"id", h.id}, {"object", "text_completion"}, {"created", h.created}, {"model", h.model},
          {"choices", cs}, {"usage", usage_json(usage)}};
}

json chunk_json(const ResponseHeader& h, size_t index, const std::string& text, const json& logprobs, const char* finish) {
  return {{"id", h.id}, {"object", "text_completion"}, {"created", h.created}, {"model", h.model},
          {"choices", json::array({{{"index", index}, {"text", text}, {"logprobs", logprobs},
                                    {"finish_reason", finish ? json(finish) : json(nullptr)}}})}};
}

json usage_chunk_json(const ResponseHeader& h, const Usage& usage, const char* object) {
  return {{"id", h.id}, {"object", object}, {"created", h.created}, {"model", h.model},
          {"choices", json::array()}, {"usage", usage_json(usage)}};
}

json chat_completion_json(const ResponseHeader& h, const std::vector<ChoiceResult>& choices, const Usage& usage,
                          const generate::TokenBytes& token_bytes) {
  json cs = json::array();
  for (size_t i = 0; i < choices.size(); ++i) {
    const ChoiceResult& c = choices[i];
    json message = {{"role", "assistant"}, {"content", c.text}};
    if (!c.tool_calls.empty()) {
      if (c.text.empty()) message["content"] = nullptr;
      message["tool_calls"] = tool_calls_json(c.tool_calls, tool_call_id_base(h, i), false);
    }
    cs.push_back({{"index", i}, {"message", message},
                  {"logprobs", c.has_logprobs ? chat_logprobs_json(c.logprobs, token_bytes) : json(nullptr)},
                  {"finish_reason", c.tool_calls.empty() ? finish_reason_name(c.finish) : "tool_calls"}});
  }
  return {{"id", h.id}, {"object", "chat.completion"}, {"created", h.created}, {"model", h.model},
          {"choices", cs}, {"usage", usage_json(usage)}};
}

std::string tool_call_id_base(const ResponseHeader& h, size_t choice) {
  const size_t dash = h.id.find('-');
  return (dash == std::string::npos ? h.id : h.id.substr(dash + 1)) + "_" + std::to_string(choice);
}

json chat_chunk_json(const ResponseHeader& h, size_t index, const json& delta, const char* finish, const json& logprobs) {
  return {{"id", h.id}, {"object", "chat.completion.chunk"}, {"created", h.created}, {"model", h.model},
          {"choices", json::array({{{"index", index}, {"delta", delta}, {"logprobs", logprobs},
                                    {"finish_reason", finish ? json(finish) : json(nullptr)}}})}};
}

std::vector<json> held_chat_chunks(const ResponseHeader& h, size_t choice, const ParsedReply& reply, const json& logprobs,
                                   generate::FinishReason finish) {
  std::vector<json> out;
  if (!reply.content.empty() || !logprobs.is_null())
    out.push_back(chat_chunk_json(h, choice, {{"content", reply.content}}, nullptr, logprobs));
  if (!reply.calls.empty())
    out.push_back(chat_chunk_json(h, choice, {{"tool_calls", tool_calls_json(reply.calls, tool_call_id_base(h, choice), true)}},
                                  nullptr));
  out.push_back(chat_chunk_json(h, choice, json::object(), reply.calls.empty() ? finish_reason_name(finish) : "tool_calls"));
  return out;
}

json models_json(const std::string& model_id, int64_t created) {
  return {{"object", "list"},
          {"data", json::array({{{"id", model_id}, {"object", "model"}, {"created", created}, {"owned_by", "magellano"}}})}};
}

}  // namespace magellano::serve
