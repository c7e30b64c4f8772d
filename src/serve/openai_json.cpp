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

json logprobs_json(const std::vector<TokenLogprob>& lps, const generate::TokenBytes& token_bytes, size_t offset) {
  auto text = [&](int32_t id) { return token_bytes ? token_bytes(id) : std::string(); };
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

json chat_completion_json(const ResponseHeader& h, const std::vector<ChoiceResult>& choices, const Usage& usage) {
  json cs = json::array();
  for (size_t i = 0; i < choices.size(); ++i)
    cs.push_back({{"index", i}, {"message", {{"role", "assistant"}, {"content", choices[i].text}}},
                  {"logprobs", nullptr}, {"finish_reason", finish_reason_name(choices[i].finish)}});
  return {{"id", h.id}, {"object", "chat.completion"}, {"created", h.created}, {"model", h.model},
          {"choices", cs}, {"usage", usage_json(usage)}};
}

json chat_chunk_json(const ResponseHeader& h, size_t index, const json& delta, const char* finish) {
  return {{"id", h.id}, {"object", "chat.completion.chunk"}, {"created", h.created}, {"model", h.model},
          {"choices", json::array({{{"index", index}, {"delta", delta}, {"logprobs", nullptr},
                                    {"finish_reason", finish ? json(finish) : json(nullptr)}}})}};
}

json models_json(const std::string& model_id, int64_t created) {
  return {{"object", "list"},
          {"data", json::array({{{"id", model_id}, {"object", "model"}, {"created", created}, {"owned_by", "magellano"}}})}};
}

}  // namespace magellano::serve
