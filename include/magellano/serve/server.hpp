// The HTTP front of `magellano serve` (cpp-httplib): routes, API key, limits, and the bridge from
// a request to the scheduler and back.
//   POST /v1/completions       request.hpp → Scheduler::submit → JSON, or SSE when "stream": true
//   POST /v1/chat/completions  chat_request.hpp → the model's chat template (chat/chat_template.hpp)
//                              → the same path as completions, in chat's shapes; with tools,
//                              the reply read for tool calls (tool_calls.hpp; streamed: held back
//                              until the choice ends); without a template: 400
//                              chat_template_unsupported (chat_note says why)
//   GET  /v1/models            the one served model
//   GET  /health               {"status": "ok"} (200), or 503 with the device failure
//   GET  /metrics              metrics.hpp (Prometheus text)
// With an API key, /v1/* and /metrics need "Authorization: Bearer <key>" (else 401); /health is open.
// Every error is OpenAI's JSON shape (api_error.hpp), routes and methods unknown to the server
// included; an exception in a handler becomes a 500, never a crash.
// Client disconnects: a streaming response finds out at its next write (an SSE comment
// ": keep-alive" after a second without any write); a non-streaming one writes a space (leading
// JSON whitespace) every second while it waits, which finds out too (the second write after the
// client left fails).
// Either way the request is cancelled and its rows are freed.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "magellano/chat/chat_template.hpp"
#include "magellano/data/tokenizer.hpp"
#include "magellano/serve/metrics.hpp"
#include "magellano/serve/request.hpp"
#include "magellano/serve/scheduler.hpp"

namespace magellano::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (port() says which)
  std::string api_key;  // "" = none
  std::string model_id;
  ServeLimits limits;
  int64_t max_batch = 8, max_queue = 64;
  std::shared_ptr<const chat::ChatTemplate> chat_template;  // null: chat completions are refused
  std::string chat_note;  // why they are refused (the 400's message)
  std::vector<int32_t> eos_ids;
  bool prompt_as_prefix = false;  // a prefix-LM checkpoint: prompts are prefilled as the prefix
};

class Server {
 public:
  // tokenizer: may be null (then prompts must be token lists, and stop strings are refused).
  Server(const nn::Model& model, Context& ctx, const data::Tokenizer* tokenizer, ServerOptions options);
  ~Server();
  // Binds the address; throws magellano::Error when it cannot. Returns the port.
  int bind();
  void run();   // serves until stop()
  void stop();  // from any thread
  int port() const { return port_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

}  // namespace magellano::serve
