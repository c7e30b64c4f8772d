// A POST /v1/chat/completions body (JSON), checked and turned into a typed request, the way
// request.hpp does it for completions: every field of OpenAI's chat API is supported or refused
// with a 400 that names it (unknown fields too).
//
// Supported: messages (a non-empty list of {"role": string, "content": string | null | a list of
// {"type": "text", "text": string} parts, ...}; other keys such as name, tool_calls and
// tool_call_id go to the template as they are), tools (a list, passed to the template; null or
// absent: None), tool_choice ("auto" or "none" only: the server does not parse tool calls out of
// the text), max_tokens or max_completion_tokens, and the sampling fields of completions
// (request.hpp: temperature, top_p, top_k, repetition_penalty, n, seed, stop, stream,
// stream_options, user; the penalties and logit_bias at neutral values). Refused: logprobs /
// top_logprobs other than false / 0, response_format other than text, and anything unknown.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "magellano/serve/request.hpp"

namespace magellano::serve {

struct ChatRequest {
  CompletionRequest params;  // prompt_text / prompt_ids unused; echo false, no logprobs
  nlohmann::ordered_json messages;  // as sent, key order kept (tojson in templates shows it)
  nlohmann::ordered_json tools;     // null when absent
};

// text: the body (already known to parse as a JSON object, parse_body). Throws ApiError: 400
// naming the field ("messages[2].content"), or 404 for another model.
ChatRequest parse_chat_request(const std::string& text, const std::string& model_id, const ServeLimits& limits);

}  // namespace magellano::serve
