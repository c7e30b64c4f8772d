#include "magellano/serve/server.hpp"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <random>

#include <sys/socket.h>

#include "magellano/runtime/error.hpp"
#include "magellano/chat/chat_template.hpp"
#include "magellano/serve/api_error.hpp"
#include "magellano/serve/chat_request.hpp"
#include "magellano/serve/openai_json.hpp"
#include "magellano/serve/sse.hpp"
#include "magellano/serve/tool_calls.hpp"

namespace magellano::serve {

using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr auto kPoll = 200ms;          // how often a waiting response checks its request
constexpr auto kHeartbeat = 1000ms;    // idle time before a keep-alive write

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(dump(e.to_json()), "application/json");
}

int64_t unix_time() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The label a request is counted under: a route of ours, else "other" (no label per unknown path).
std::string endpoint_label(const std::string& path) {
  for (const char* p : {"/v1/completions", "/v1/chat/completions", "/v1/models", "/health", "/metrics"})
    if (path == p) return p;
  return "other";
}

// httplib::Server with a deeper accept queue: the library listens with a backlog of 5
// (CPPHTTPLIB_LISTEN_BACKLOG, compiled into Debian's library), so a burst of clients overflows it
// and connections get reset. listen() again on the bound socket sets the backlog anew (Linux).
class HttpServer : public httplib::Server {
 public:
  void widen_backlog() { ::listen(svr_sock_, SOMAXCONN); }
};

}  // namespace

struct Server::Impl {
  const nn::Model& model;
  const data::Tokenizer* tokenizer;
  ServerOptions opt;
  Metrics metrics;
  generate::TokenBytes token_bytes;
  std::unique_ptr<Scheduler> scheduler;
  HttpServer http;
  int64_t created = unix_time();
  std::atomic<uint64_t> next_id{0};
  uint64_t id_salt = std::random_device{}();

  Impl(const nn::Model& m, Context& ctx, const data::Tokenizer* tok, ServerOptions o)
      : model(m), tokenizer(tok), opt(std::move(o)) {
    if (tokenizer)
      token_bytes = [this](int32_t id) -> std::string {
        return id >= 0 && static_cast<size_t>(id) < tokenizer->vocab_size() ? tokenizer->token_bytes(static_cast<uint32_t>(id))
                                                                          : std::string();
      };
    scheduler = std::make_unique<Scheduler>(model, ctx, token_bytes, opt.eos_ids, opt.max_batch, opt.max_queue, metrics,
                                            opt.prompt_as_prefix);
    routes();
  }

  void authorize(const httplib::Request& req) const {
    if (opt.api_key.empty()) return;
    const std::string auth = req.get_header_value("Authorization");
    if (auth.empty())
      throw ApiError(401, "Missing API key: send the header 'Authorization: Bearer <key>'.", "", "invalid_api_key");
    if (auth != "Bearer " + opt.api_key) throw ApiError(401, "Incorrect API key provided.", "", "invalid_api_key");
  }

  // Runs a handler, turning ApiError and anything else into an OpenAI error response.
  template <class F>
  httplib::Server::Handler guarded(F f, bool needs_key = true) {
    return [this, f, needs_key](const httplib::Request& req, httplib::Response& res) {
      try {
        if (needs_key) authorize(req);
        f(req, res);
      } catch (const ApiError& e) {
        send_error(res, e);
      } catch (const std::exception& e) {
        send_error(res, ApiError(500, std::string("Internal error: ") + e.what(), "", "internal_error", "server_error"));
      }
    };
  }

  void routes() {
    http.Post("/v1/completions", guarded([this](const auto& req, auto& res) { completions(req, res); }));
    http.Post("/v1/chat/completions", guarded([this](const auto& req, auto& res) {
      if (!opt.chat_template) {
        parse_body(req.body);  // malformed JSON says so first
        throw ApiError(400, opt.chat_note, "messages", "chat_template_unsupported");
      }
      chat_completions(req, res);
    }));
    http.Get("/v1/models", guarded([this](const auto&, auto& res) {
      res.set_content(dump(models_json(opt.model_id, created)), "application/json");
    }));
    http.Get("/health", guarded([this](const auto&, auto& res) {
      const std::string failure = scheduler->failure();
      if (!failure.empty()) throw ApiError(503, "The device failed: " + failure, "", "device_failure", "server_error");
      res.set_content(R"({"status":"ok"})", "application/json");
    }, false));
    http.Get("/metrics", guarded([this](const auto&, auto& res) {
      res.set_content(metrics.render(), "text/plain; version=0.0.4");
    }));
    // httplib's own answers (404 no route, 413 body too large, 400 unreadable request) get a JSON body.
    http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      std::string msg = "HTTP " + std::to_string(res.status);
      std::string code;
      if (res.status == 404) msg = "Unknown route: " + req.method + " " + req.path + " (see GET /v1/models, POST /v1/completions).", code = "not_found";
      if (res.status == 413) msg = "The request body is too large (--max-body-bytes).", code = "body_too_large";
      send_error(res, ApiError(res.status, msg, "", code));
    });
    http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
      send_error(res, ApiError(500, "Internal error.", "", "internal_error", "server_error"));
    });
    http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      metrics.count_request(endpoint_label(req.path), res.status);
    });
    http.set_payload_max_length(opt.limits.max_body_bytes);
    // One thread per connection being served: every streaming client holds one while it streams.
    // Connections beyond the pool wait for a thread (accepted, in the pool's queue).
    const size_t threads = static_cast<size_t>(std::min<int64_t>(opt.max_batch + opt.max_queue + 8, 512));
    http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    http.set_keep_alive_timeout(2);
    // SO_REUSEADDR (a restart may bind while old connections linger) but not httplib's default
    // SO_REUSEPORT, with which a second server on the same port would silently share it.
    http.set_socket_options([](socket_t sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
  }

  // The prompt's ids (text encoded without template tokens, as OpenAI's completions do), checked.
  std::vector<int32_t> prompt_ids(const CompletionRequest& r) const {
    std::vector<int32_t> ids = r.prompt_ids;
    if (r.prompt_text) {
      if (!tokenizer)
        throw ApiError(400, "This server has no tokenizer (--tokenizer DIR): send 'prompt' as a list of token ids.", "prompt");
      for (uint32_t id : tokenizer->encode(*r.prompt_text, data::SpecialTokens::AsText)) ids.push_back(static_cast<int32_t>(id));
      if (ids.empty()) throw ApiError(400, "'prompt' encodes to no tokens.", "prompt");
    }
    check_ids(ids, "prompt");
    return ids;
  }

  // ids within the vocabulary and --max-prompt-tokens; param: "prompt" or "messages".
  void check_ids(const std::vector<int32_t>& ids, const std::string& param) const {
    const int64_t V = model.spec().vocab_size;
    for (int32_t id : ids)
      if (id >= V)
        throw ApiError(400, "'" + param + "' has token id " + std::to_string(id) + ", outside the model's vocabulary [0, " +
                                std::to_string(V) + ").", param);
    if (static_cast<int64_t>(ids.size()) > opt.limits.max_prompt_tokens)
      throw ApiError(400, std::string(param == "prompt" ? "The prompt" : "The rendered conversation") + " has " +
                              std::to_string(ids.size()) + " tokens; this server takes at most " +
                              std::to_string(opt.limits.max_prompt_tokens) + " (--max-prompt-tokens).", param,
                     "context_length_exceeded");
  }

  std::string prompt_text(const CompletionRequest& r, const std::vector<int32_t>& ids) const {
    if (r.prompt_text) return *r.prompt_text;
    std::string s;
    if (token_bytes)
      for (int32_t id : ids) s += token_bytes(id);
    return s;
  }

  void completions(const httplib::Request& req, httplib::Response& res) {
    const CompletionRequest r = parse_completion_request(parse_body(req.body), opt.model_id, opt.limits);
    if (!r.stop.empty() && !token_bytes)
      throw ApiError(400, "'stop' needs a tokenizer to read the text, and this server has none (--tokenizer DIR).", "stop");
    const std::vector<int32_t> ids = prompt_ids(r);
    respond(r, ids, r.echo ? prompt_text(r, ids) : std::string(), false, res);
  }

  // The conversation rendered by the model's chat template (add_generation_prompt true) and
  // encoded as transformers' apply_chat_template(tokenize=True) does: special tokens written by
  // the template (<|im_start|>, ...) are their ids, and no BOS / EOS is added around it.
  void chat_completions(const httplib::Request& req, httplib::Response& res) {
    const ChatRequest c = parse_chat_request(req.body, opt.model_id, opt.limits);
    if (!tokenizer)
      throw ApiError(400, "This server has no tokenizer (--tokenizer DIR), so it cannot encode a conversation; use "
                          "POST /v1/completions with token ids.", "messages");
    std::string prompt;
    try {
      prompt = chat::render_chat(*opt.chat_template, c.messages, c.tools, true);
    } catch (const chat::jinja::TemplateError& e) {
      throw ApiError(400, std::string("The model's chat template failed on these messages: ") + e.what(), "messages",
                     "chat_template_error");
    }
    std::vector<int32_t> ids;
    for (uint32_t id : tokenizer->encode(prompt, data::SpecialTokens::Allowed)) ids.push_back(static_cast<int32_t>(id));
    if (ids.empty()) throw ApiError(400, "The conversation renders to no tokens.", "messages");
    check_ids(ids, "messages");
    const ToolCallSyntax syntax =
        c.tool_calls ? tool_call_syntax(chat::chosen_source(*opt.chat_template, true)) : ToolCallSyntax::none;
    respond(c.params, ids, std::string(), true, res, syntax);
  }

  // Submits the request's choices and answers: JSON, or server-sent events with "stream": true;
  // completions' shapes, or chat completions' with `chat`, whose replies are read for tool calls
  // in `tools` syntax (none: not read).
  void respond(const CompletionRequest& r, const std::vector<int32_t>& ids, const std::string& echo, bool chat,
               httplib::Response& res, ToolCallSyntax tools = ToolCallSyntax::none) {
    uint64_t seed = r.sampling.seed;
    if (!r.seed_given) seed = std::random_device{}() ^ (uint64_t{std::random_device{}()} << 32);
    std::vector<SequenceSpec> choices;
    for (int64_t c = 0; c < r.n; ++c) {
      SequenceSpec s;
      s.prompt = ids;
      s.sampling = r.sampling;
      s.sampling.seed = seed + static_cast<uint64_t>(c);
      s.max_tokens = r.max_tokens;
      s.stop = r.stop;
      s.logprobs = r.logprobs;
      choices.push_back(std::move(s));
    }
    auto handle = scheduler->submit(std::move(choices));
    ResponseHeader h{std::string(chat ? "chatcmpl-" : "cmpl-") + std::to_string(id_salt % 1000000007) + "-" +
                         std::to_string(next_id++),
                     unix_time(), opt.model_id};
    const int64_t prompt_tokens = static_cast<int64_t>(ids.size());
    auto releaser = [handle](bool success) {
      if (!success) handle->cancel();
    };
    if (r.stream) {
      res.set_header("Cache-Control", "no-cache");
      res.set_chunked_content_provider(
          "text/event-stream",
          [this, handle, h, r, echo, prompt_tokens, chat, tools](size_t, httplib::DataSink& sink) {
            return stream(*handle, sink, h, r, echo, prompt_tokens, chat, tools);
          },
          releaser);
    } else {
      // With the charset named, httplib does not compress the body (it compresses exactly
      // "application/json" for clients that accept gzip), so each heartbeat reaches the socket.
      res.set_chunked_content_provider(
          "application/json; charset=utf-8",
          [this, handle, h, r, echo, prompt_tokens, chat, tools](size_t, httplib::DataSink& sink) {
            return complete(*handle, sink, h, r, echo, prompt_tokens, chat, tools);
          },
          releaser);
    }
  }

  // Waits for events. Whenever a second has passed since the last write (`last_write`), writes
  // `idle` first: a streaming response that is waiting, or a non-streaming one at any time, finds
  // out this way that its client is gone (false; the request is cancelled).
  static bool next_events(RequestHandle& handle, httplib::DataSink& sink, const char* idle,
                          std::chrono::steady_clock::time_point& last_write, std::vector<Event>& out) {
    for (;;) {
      if (std::chrono::steady_clock::now() - last_write >= kHeartbeat) {
        if (!sink.write(idle, std::strlen(idle))) {
          handle.cancel();
          return false;
        }
        last_write = std::chrono::steady_clock::now();
      }
      out = handle.wait(kPoll);
      if (!out.empty() || handle.done()) return true;
    }
  }

  // With `tools` (chat), a choice's reply is held back until it finishes, then sent as its content
  // (with all of its logprobs) and / or one delta of every tool call found in it.
  bool stream(RequestHandle& handle, httplib::DataSink& sink, const ResponseHeader& h, const CompletionRequest& r,
              const std::string& echo, int64_t prompt_tokens, bool chat, ToolCallSyntax tools) {
    auto last_write = std::chrono::steady_clock::now();
    auto write = [&](const std::string& s) {
      last_write = std::chrono::steady_clock::now();
      if (sink.write(s.data(), s.size())) return true;
      handle.cancel();
      return false;
    };
    std::vector<size_t> offsets(static_cast<size_t>(r.n), echo.size());
    if (!echo.empty())
      for (int64_t c = 0; c < r.n; ++c)
        if (!write(sse_event(chunk_json(h, static_cast<size_t>(c), echo, nullptr, nullptr)))) return false;
    if (chat)  // each choice's first delta names the role
      for (int64_t c = 0; c < r.n; ++c)
        if (!write(sse_event(chat_chunk_json(h, static_cast<size_t>(c), {{"role", "assistant"}, {"content", ""}}, nullptr))))
          return false;
    Usage usage{prompt_tokens * r.n, 0};
    std::vector<ChoiceResult> held(tools != ToolCallSyntax::none ? static_cast<size_t>(r.n) : 0);
    std::vector<Event> events;
    while (!handle.done()) {
      if (!next_events(handle, sink, kSseKeepAlive, last_write, events)) return false;
      for (const Event& e : events) {
        if (!e.error.empty()) {
          write(sse_event(ApiError(500, "Generation failed: " + e.error, "", "internal_error", "server_error").to_json()));
          continue;
        }
        usage.completion_tokens += static_cast<int64_t>(e.ids.size());
        const json lp = r.logprobs ? logprobs_json(e.logprobs, token_bytes, offsets[e.choice]) : json(nullptr);
        for (const auto& t : e.logprobs) offsets[e.choice] += token_bytes ? token_bytes(t.id).size() : 0;
        // With a tokenizer, a token whose bytes are held back (a possible stop string, a
        // character not complete yet) sends nothing; without one every token sends a chunk (with
        // empty text), so a client still sees each token arrive.
        if (e.text.empty() && !e.finish && !r.logprobs && token_bytes) continue;
        if (chat && !held.empty()) {
          ChoiceResult& c = held[e.choice];
          c.text += e.text;
          c.logprobs.insert(c.logprobs.end(), e.logprobs.begin(), e.logprobs.end());
          if (e.finish && !write_held_chat(h, e.choice, c, *e.finish, r.logprobs.has_value(), tools, write)) return false;
          continue;
        }
        if (chat) {  // the text (and its logprobs), then the finish reason in a chunk of its own with an empty delta
          const bool lps = r.logprobs && !e.logprobs.empty();
          if ((!e.text.empty() || lps) &&
              !write(sse_event(chat_chunk_json(h, e.choice, {{"content", e.text}}, nullptr,
                                               lps ? chat_logprobs_json(e.logprobs, token_bytes) : json(nullptr)))))
            return false;
          if (e.finish && !write(sse_event(chat_chunk_json(h, e.choice, json::object(), finish_reason_name(*e.finish)))))
            return false;
          continue;
        }
        if (!write(sse_event(chunk_json(h, e.choice, e.text, lp, e.finish ? finish_reason_name(*e.finish) : nullptr))))
          return false;
      }
    }
    if (r.include_usage &&
        !write(sse_event(usage_chunk_json(h, usage, chat ? "chat.completion.chunk" : "text_completion"))))
      return false;
    if (!write(kSseDone)) return false;
    sink.done();
    return true;
  }

  // A held-back chat choice, finished: held_chat_chunks of its parsed reply.
  template <class Write>
  bool write_held_chat(const ResponseHeader& h, size_t choice, ChoiceResult& c, generate::FinishReason finish,
                       bool logprobs, ToolCallSyntax tools, Write& write) {
    const json lp = logprobs ? chat_logprobs_json(c.logprobs, token_bytes) : json(nullptr);
    for (const json& chunk : held_chat_chunks(h, choice, parse_tool_calls(tools, c.text), lp, finish))
      if (!write(sse_event(chunk))) return false;
    return true;
  }

  bool complete(RequestHandle& handle, httplib::DataSink& sink, const ResponseHeader& h, const CompletionRequest& r,
                const std::string& echo, int64_t prompt_tokens, bool chat, ToolCallSyntax tools) {
    std::vector<ChoiceResult> choices(static_cast<size_t>(r.n));
    for (auto& c : choices) {
      c.text = echo;
      c.has_logprobs = r.logprobs.has_value();
    }
    Usage usage{prompt_tokens * r.n, 0};
    std::string error;
    std::vector<Event> events;
    auto last_write = std::chrono::steady_clock::now();
    while (!handle.done()) {
      if (!next_events(handle, sink, " ", last_write, events)) return false;
      for (Event& e : events) {
        if (!e.error.empty()) error = e.error;
        ChoiceResult& c = choices[e.choice];
        c.text += e.text;
        usage.completion_tokens += static_cast<int64_t>(e.ids.size());
        c.logprobs.insert(c.logprobs.end(), e.logprobs.begin(), e.logprobs.end());
        if (e.finish) c.finish = *e.finish;
      }
    }
    if (chat && tools != ToolCallSyntax::none)
      for (ChoiceResult& c : choices) {
        ParsedReply p = parse_tool_calls(tools, c.text);
        if (p.calls.empty()) continue;
        c.text = std::move(p.content);
        c.tool_calls = std::move(p.calls);
      }
    const std::string body =
        error.empty() ? dump(chat ? chat_completion_json(h, choices, usage, token_bytes)
                                  : completion_json(h, choices, usage, token_bytes, echo.size()))
                      : dump(ApiError(500, "Generation failed: " + error, "", "internal_error", "server_error").to_json());
    if (!sink.write(body.data(), body.size())) return false;
    sink.done();
    return true;
  }
};

Server::Server(const nn::Model& model, Context& ctx, const data::Tokenizer* tokenizer, ServerOptions options)
    : impl_(std::make_unique<Impl>(model, ctx, tokenizer, std::move(options))) {}

Server::~Server() = default;

int Server::bind() {
  const auto& o = impl_->opt;
  if (o.port == 0) {
    port_ = impl_->http.bind_to_any_port(o.host);
    if (port_ < 0) throw Error("serve: cannot listen on " + o.host + " (no free port, or not an address of this machine).");
  } else {
    if (!impl_->http.bind_to_port(o.host, o.port))
      throw Error("serve: cannot listen on " + o.host + ":" + std::to_string(o.port) +
                  " (in use, a privileged port, or not an address of this machine); pick another --port or --host.");
    port_ = o.port;
  }
  impl_->http.widen_backlog();
  return port_;
}

void Server::run() { impl_->http.listen_after_bind(); }

void Server::stop() { impl_->http.stop(); }

}  // namespace magellano::serve
