// Server-sent events (the WHATWG EventSource format) as OpenAI's streaming API uses them: each
// chunk is one event "data: <compact JSON>\n\n", the stream ends with "data: [DONE]\n\n".
// Lines starting with ':' are comments that clients ignore; the server sends ": keep-alive" while
// a request waits for a row, which also finds out whether the client is still there.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace magellano::serve {

std::string sse_event(const nlohmann::json& data);  // "data: {...}\n\n"
inline constexpr const char* kSseDone = "data: [DONE]\n\n";
inline constexpr const char* kSseKeepAlive = ": keep-alive\n\n";

}  // namespace magellano::serve
