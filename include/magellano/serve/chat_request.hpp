// A POST /v1/chat/completions body (JSON), checked and turned into a typed request, the way
// request.hpp does it for completions: every field of OpenAI's chat API is supported or refused
// with a 400 that names it (unknown fields too).
//
// Supported: messages (a non-empty list of {"role": string, "content": string | null | a list of
// {"type": "text", "text": string} parts, ...}; other keys such as name go to the template as they
// are; an assistant message may carry tool_calls [{"id", "type": "function", "function": {"name",
// "arguments"}}] instead of content, its "arguments" JSON text turned into the object the templates
// expect; a "tool" message needs its tool_call_id), tools (a list of {"type": "function",
// "function": {"name", "description", "parameters"}}, passed to the template as transformers'
// apply_chat_template(tools=...) does), tool_choice ("auto", the default, or "none": then the tools
// are left out of the prompt and the reply is not read for calls; "required" and a named function
// are refused: nothing here can force a call), logprobs (true / false) with top_logprobs (0 .. 20,
// only with logprobs true), max_tokens or max_completion_tokens, and the sampling fields of
// completions (request.hpp: temperature, top_p, top_k, repetition_penalty, n, seed, stop, stream,
// stream_options, user; the penalties and logit_bias at neutral values). Refused: response_format
// other than text, and anything unknown.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "magellano/serve/request.hpp"

namespace magellano::serve {

struct ChatRequest {
  CompletionRequest params;  // prompt_text / prompt_ids unused; echo false; logprobs = top_logprobs
  nlohmann::ordered_json messages;  // as sent, key order kept (tojson in templates shows it), tool
                                    // calls' arguments as objects
  nlohmann::ordered_json tools;     // for the template: null when absent or tool_choice "none"
  bool tool_calls = false;          // read the reply for tool calls (tools given, tool_choice not "none")
};

// text: the body (already known to parse as a JSON object, parse_body). Throws ApiError: 400
// naming the field ("messages[2].content"), or 404 for another model.
ChatRequest parse_chat_request(const std::string& text, const std::string& model_id, const ServeLimits& limits);

}  // namespace magellano::serve
