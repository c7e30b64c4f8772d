// A POST /v1/completions body, as `magellano serve` reads it (serve/request.hpp): any bytes either
// parse into a request within the limits or give an ApiError (the 4xx answer); anything else
// (another exception, a crash, a sanitizer report) is a finding. A request that parses has a
// non-empty prompt, max_tokens and n within the limits, at most 4 non-empty stop strings, and
// sampling settings the sampler accepts.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "magellano/generate/sampler.hpp"
#include "magellano/serve/request.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  magellano::serve::ServeLimits limits;
  limits.max_tokens = 100;
  limits.max_n = 3;
  magellano::serve::CompletionRequest r;
  try {
    r = magellano::serve::parse_completion_request(magellano::serve::parse_body(text), "m", limits);
  } catch (const magellano::serve::ApiError& e) {
    if (e.status != 400 && e.status != 404) std::abort();
    return 0;
  }
  if (r.prompt_text ? r.prompt_text->empty() : r.prompt_ids.empty()) std::abort();
  if (r.max_tokens < 1 || r.max_tokens > limits.max_tokens || r.n < 1 || r.n > limits.max_n) std::abort();
  if (r.stop.size() > 4) std::abort();
  for (const auto& s : r.stop)
    if (s.empty()) std::abort();
  if (r.logprobs && (*r.logprobs < 0 || *r.logprobs > 5)) std::abort();
  magellano::generate::validate(r.sampling);  // throws (a finding) for settings the sampler refuses
  return 0;
}
