// The JSON shapes of OpenAI's completions API that the server answers with:
//   completion   {"id", "object": "text_completion", "created", "model",
//                 "choices": [{"index", "text", "logprobs": null | {...}, "finish_reason"}],
//                 "usage": {"prompt_tokens", "completion_tokens", "total_tokens"}}
//   stream chunk the same object with one choice holding only the new text ("finish_reason" null
//                until its last chunk), and with stream_options.include_usage a last chunk
//                with "choices": [] and "usage"
//   logprobs     {"tokens": [text of each id], "token_logprobs": [...], "top_logprobs": [{text: lp}],
//                 "text_offset": [byte offset of each token in the choice's text]}
//   models       {"object": "list", "data": [{"id", "object": "model", "created", "owned_by"}]}
//   chat         {"id": "chatcmpl-...", "object": "chat.completion", "created", "model",
//                 "choices": [{"index", "message": {"role": "assistant", "content", ["tool_calls"]},
//                 "logprobs": null | chat logprobs, "finish_reason"}], "usage"}; with tool calls the
//                 content is the text outside them (null when none), "tool_calls": [{"id": "call_...",
//                 "type": "function", "function": {"name", "arguments": JSON text}}], and the
//                 finish_reason "tool_calls"
//   chat logprobs {"content": [{"token", "logprob", "bytes": [0..255, ...], "top_logprobs": [{"token",
//                 "logprob", "bytes"}, ...]}], "refusal": null}
//   chat chunk   "object": "chat.completion.chunk", one choice {"index", "delta", "logprobs",
//                "finish_reason"}: a choice's first delta is {"role": "assistant", "content": ""},
//                then {"content": "..."} (with logprobs: its tokens' chat logprobs) or
//                {"tool_calls": [... each with its "index"]}, its last {} with the finish_reason;
//                the usage chunk as above
// Error bodies: api_error.hpp. Texts that are not valid UTF-8 (a token ending mid-character) are
// written with U+FFFD in place of the bad bytes.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "magellano/generate/generator.hpp"
#include "magellano/serve/scheduler.hpp"
#include "magellano/serve/tool_calls.hpp"

namespace magellano::serve {

// Identity shared by every object of one response.
struct ResponseHeader {
  std::string id;  // "cmpl-..."
  int64_t created = 0;
  std::string model;
};

struct Usage {
  int64_t prompt_tokens = 0, completion_tokens = 0;
};

// One finished choice.
struct ChoiceResult {
  std::string text;  // the echoed prompt (if asked) and the generated text
  std::vector<TokenLogprob> logprobs;
  bool has_logprobs = false;
  generate::FinishReason finish = generate::FinishReason::length;
  std::vector<ToolCall> tool_calls;  // chat: calls read from the reply (then text is the rest)
};

// "stop" for an end-of-text id or a stop string, "length" for max_tokens.
const char* finish_reason_name(generate::FinishReason r);

// logprobs: the tokens' texts come from token_bytes; offsets count from `offset` (bytes of the
// choice's text before the first of these tokens).
nlohmann::json logprobs_json(const std::vector<TokenLogprob>& lps, const generate::TokenBytes& token_bytes,
                             size_t offset);

nlohmann::json completion_json(const ResponseHeader& h, const std::vector<ChoiceResult>& choices, const Usage& usage,
                               const generate::TokenBytes& token_bytes, size_t echo_bytes);
// One stream chunk; finish = nullopt until the choice's last chunk; logprobs null when has_logprobs is false.
nlohmann::json chunk_json(const ResponseHeader& h, size_t index, const std::string& text,
                          const nlohmann::json& logprobs, const char* finish);
// object: "text_completion" or "chat.completion.chunk".
nlohmann::json usage_chunk_json(const ResponseHeader& h, const Usage& usage, const char* object = "text_completion");
nlohmann::json chat_completion_json(const ResponseHeader& h, const std::vector<ChoiceResult>& choices, const Usage& usage,
                                    const generate::TokenBytes& token_bytes);
// delta: {"role": ...} / {"content": ...} / {"tool_calls": ...} / {}; finish: nullptr until the
// choice's last chunk; logprobs: null or chat_logprobs_json.
nlohmann::json chat_chunk_json(const ResponseHeader& h, size_t index, const nlohmann::json& delta, const char* finish,
                               const nlohmann::json& logprobs = nullptr);
nlohmann::json chat_logprobs_json(const std::vector<TokenLogprob>& lps, const generate::TokenBytes& token_bytes);
// The calls as OpenAI lists them, ids "call_<id_base>_<k>" (with_index: streaming's "index" too).
nlohmann::json tool_calls_json(const std::vector<ToolCall>& calls, const std::string& id_base, bool with_index);
// The id base of choice `choice`'s calls: the response id's number and the choice.
std::string tool_call_id_base(const ResponseHeader& h, size_t choice);
// A chat choice held back until it finished (streaming with tools), as chunks: its content (when
// there is any, or logprobs are non-null: then with them), its tool calls in one delta (when there
// are any), and the finish chunk ("tool_calls" when there are calls).
std::vector<nlohmann::json> held_chat_chunks(const ResponseHeader& h, size_t choice, const ParsedReply& reply,
                                             const nlohmann::json& logprobs, generate::FinishReason finish);
nlohmann::json models_json(const std::string& model_id, int64_t created);

// j as compact JSON text, invalid UTF-8 replaced by U+FFFD.
std::string dump(const nlohmann::json& j);

}  // namespace magellano::serve
