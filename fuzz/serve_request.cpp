// A POST /v1/completions or /v1/chat/completions body, as `magellano serve` reads it
// (serve/request.hpp, serve/chat_request.hpp; each input goes through both): any bytes either
// parse into a request within the limits or give an ApiError (the 4xx answer); anything else
// (another exception, a crash, a sanitizer report) is a finding. A request that parses has a
// non-empty prompt (chat: a non-empty list of messages), max_tokens and n within the limits, at
// most 4 non-empty stop strings, logprobs within range, and sampling settings the sampler accepts.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "magellano/generate/sampler.hpp"
#include "magellano/serve/chat_request.hpp"
#include "magellano/serve/request.hpp"

namespace {

void check_common(const magellano::serve::CompletionRequest& r, const magellano::serve::ServeLimits& limits,
                  int64_t max_logprobs) {
  if (r.max_tokens < 1 || r.max_tokens > limits.max_tokens || r.n < 1 || r.n > limits.max_n) std::abort();
  if (r.stop.size() > 4) std::abort();
  for (const auto& s : r.stop)
    if (s.empty()) std::abort();
  if (r.logprobs && (*r.logprobs < 0 || *r.logprobs > max_logprobs)) std::abort();
  magellano::generate::validate(r.sampling);  // throws (a finding) for settings the sampler refuses
}

// The chat reading of the same bytes.
void chat(const std::string& text, const magellano::serve::ServeLimits& limits) {
  magellano::serve::ChatRequest c;
  try {
    magellano::serve::parse_body(text);
    c = magellano::serve::parse_chat_request(text, "m", limits);
  } catch (const magellano::serve::ApiError& e) {
    if (e.status != 400 && e.status != 404) std::abort();
    return;
  }
  if (!c.messages.is_array() || c.messages.empty()) std::abort();
  if (c.tool_calls != !c.tools.is_null() || (!c.tools.is_null() && !c.tools.is_array())) std::abort();
  check_common(c.params, limits, 20);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  magellano::serve::ServeLimits limits;
  limits.max_tokens = 100;
  limits.max_n = 3;
  chat(text, limits);
  magellano::serve::CompletionRequest r;
  try {
    r = magellano::serve::parse_completion_request(magellano::serve::parse_body(text), "m", limits);
  } catch (const magellano::serve::ApiError& e) {
    if (e.status != 400 && e.status != 404) std::abort();
    return 0;
  }
  if (r.prompt_text ? r.prompt_text->empty() : r.prompt_ids.empty()) std::abort();
  check_common(r, limits, 5);
  return 0;
}
