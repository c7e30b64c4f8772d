// A POST /v1/completions body (JSON), checked and turned into a typed request. Every field of
// OpenAI's completions API is either supported or refused with a 400 that names it; unknown
// fields are refused too (as OpenAI does), so a typo never silently changes the output.
//
// Supported: model (optional; must be the served model's id, else 404), prompt (a string, a
// list of token ids, or a list holding one of those), max_tokens (1 ..
// limits.max_tokens; default 16), temperature [0, 2] (0 = greedy), top_p [0, 1], n (1 ..
// limits.max_n: choice i samples with seed + i), stop (a string or up to 4 strings), seed
// (integer >= 0; default: random), echo, logprobs (0 .. 5: the chosen token's log-probability
// and the top alternatives, of the model's distribution before temperature / top-k / top-p),
// stream, stream_options.include_usage, user (ignored), best_of (only equal to n), and
// presence_penalty / frequency_penalty / logit_bias / suffix only at their neutral values.
// Extensions (as vLLM names them): top_k (-1 or 0 = off), repetition_penalty (> 0, Hugging
// Face's multiplicative penalty over the prompt and the generated ids).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "magellano/generate/sampler.hpp"
#include "magellano/serve/api_error.hpp"

namespace magellano::serve {

struct ServeLimits {
  size_t max_body_bytes = 1 << 20;   // larger bodies: 413
  int64_t max_prompt_tokens = 2048;  // longer prompts: 400 context_length_exceeded
  int64_t max_tokens = 512;          // the largest max_tokens accepted
  int64_t max_n = 4;                 // the largest n (each choice takes a row)
};

struct CompletionRequest {
  std::optional<std::string> prompt_text;  // exactly one of these two
  std::vector<int32_t> prompt_ids;         // (non-empty when prompt_text is not set)
  int64_t max_tokens = 16;
  generate::SamplingParams sampling;  // seed: the given one, else 0 with seed_given false
  bool seed_given = false;
  std::vector<std::string> stop;
  int64_t n = 1;
  bool echo = false;
  std::optional<int64_t> logprobs;  // top alternatives per token (0 = the chosen token only)
  bool stream = false, include_usage = false;
};

// body: the parsed JSON. model_id: the served model's id. Throws ApiError (400, or 404 for
// another model) naming the parameter.
CompletionRequest parse_completion_request(const nlohmann::json& body, const std::string& model_id,
                                           const ServeLimits& limits);

// The parts shared with chat completions (chat_request.hpp): 404 unless `model` is absent or the
// served model's id; and max_tokens, temperature, top_p, top_k, repetition_penalty, n, seed, stop,
// stream, stream_options, user, and the neutral-only presence_penalty / frequency_penalty /
// logit_bias, as described above.
void check_model(const nlohmann::json& body, const std::string& model_id);
void read_sampling_fields(const nlohmann::json& body, CompletionRequest& r, const ServeLimits& limits);
// One field checked as the fields above are (null or absent: nullopt / false): an integer in
// [lo, hi], a boolean.
std::optional<int64_t> integer_field(const nlohmann::json& body, const char* key, int64_t lo, int64_t hi);
bool boolean_field(const nlohmann::json& body, const char* key);
// "a string", "a list", "an object", ... for messages.
std::string json_type_name(const nlohmann::json& v);

// The body text parsed as a JSON object, or ApiError 400 ("not valid JSON" / "must be an object").
nlohmann::json parse_body(const std::string& text);

}  // namespace magellano::serve
