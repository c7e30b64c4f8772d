// magellano serve --checkpoint DIR [--adapter DIR] [--tokenizer DIR] [--device D] [--host 127.0.0.1]
//   [--port 8080] [--max-batch N] [--max-queue N] [--api-key KEY] [--max-body-bytes B]
//   [--max-prompt-tokens N] [--max-tokens N] [--max-n N] [--model-name NAME]
// An OpenAI-compatible HTTP server with continuous batching (serve/server.hpp, serve/scheduler.hpp).
// Prints "magellano serve: MODEL on http://HOST:PORT ..." once it listens (--port 0: a free port);
// SIGINT / SIGTERM stop it: no new connections, and it exits once the requests in flight are
// answered (each is bounded by --max-tokens).
#include <boost/program_options.hpp>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <pthread.h>
#include <thread>

#include "command.hpp"
#include "model_source.hpp"
#include "options.hpp"
#include "magellano/chat/chat_template.hpp"
#include "magellano/serve/tool_calls.hpp"
#include "magellano/runtime/error.hpp"
#include "magellano/serve/server.hpp"

namespace po = boost::program_options;
namespace fs = std::filesystem;
using namespace magellano;

namespace {

// The chat template of the tokenizer folder, else of the checkpoint folder
// (chat/chat_template.hpp). Without one, or with one that cannot be used, `note` says why (the
// 400 of POST /v1/chat/completions) and the result is null.
std::shared_ptr<const chat::ChatTemplate> find_chat_template(const std::vector<fs::path>& dirs, std::string& note) {
  const std::string tail = " Format the conversation into a prompt yourself and use POST /v1/completions.";
  for (const auto& d : dirs) {
    if (d.empty()) continue;
    try {
      if (auto t = chat::load_chat_template(d)) {
        if (!t->unused_names.empty()) {
          std::string names;
          for (const auto& n : t->unused_names) names += (names.empty() ? "" : ", ") + n;
          std::cerr << "note: serve: " << t->origin << " also names the chat templates " << names
                    << "; only \"default\" (and \"tool_use\" when a request gives tools) are used.\n";
        }
        return std::make_shared<const chat::ChatTemplate>(std::move(*t));
      }
    } catch (const std::exception& e) {
      note = std::string("This model's chat template cannot be used: ") + e.what() + "." + tail;
      std::cerr << "warning: serve: chat completions are off: " << e.what() << "\n";
      return nullptr;
    }
  }
  note = "This model has no chat template (no chat_template.jinja, chat_template.json, or chat_template in "
         "tokenizer_config.json), so chat completions are not available." + tail;
  return nullptr;
}

bool loopback(const std::string& host) { return host == "127.0.0.1" || host == "localhost" || host == "::1"; }

int run_serve(int argc, char** argv) {
  po::options_description opts(
      "magellano serve: an OpenAI-compatible HTTP server (POST /v1/completions, POST /v1/chat/completions\n"
      "with the model's Jinja chat template, GET /v1/models, /health, /metrics) that decodes concurrent\n"
      "requests together (continuous batching)\n"
      "  magellano serve --checkpoint DIR [--port 8080]\n"
      "Options");
  cli::ModelSource source;
  std::string tokenizer_dir, model_name;
  serve::ServerOptions o;
  cli::add_common_options(opts, cli::kDevice);
  cli::add_model_source_options(opts, source);
  opts.add_options()
      ("tokenizer", po::value(&tokenizer_dir), "tokenizer folder (default: the checkpoint folder's tokenizer files, else the config's data.tokenizer)")
      ("host", po::value(&o.host)->default_value(o.host), "address to listen on (0.0.0.0: every interface; use --api-key then)")
      ("api-key", po::value(&o.api_key), "require 'Authorization: Bearer KEY' on /v1/* and /metrics (default: "
                                         "$MAGELLANO_API_KEY, else none)")
      ("model-name", po::value(&model_name), "the model id clients send (default: the checkpoint folder's name)");
  cli::add_integer_option(opts, "port", &o.port, 0, 65535, "TCP port (0: any free port, printed at start)");
  cli::add_integer_option(opts, "max-batch", &o.max_batch, 1, 4096, "rows decoded together (sequences in flight)");
  cli::add_integer_option(opts, "max-queue", &o.max_queue, 0, 1 << 20, "sequences that may wait for a row (more: 429)");
  cli::add_integer_option(opts, "max-body-bytes", &o.limits.max_body_bytes, 1, int64_t{1} << 30, "largest request body (more: 413)");
  cli::add_integer_option(opts, "max-prompt-tokens", &o.limits.max_prompt_tokens, 1, int64_t{1} << 30, "longest prompt in tokens (more: 400)");
  cli::add_integer_option(opts, "max-tokens", &o.limits.max_tokens, 1, int64_t{1} << 30, "largest max_tokens a request may ask for");
  cli::add_integer_option(opts, "max-n", &o.limits.max_n, 1, 4096, "largest n (choices per request)");
  po::variables_map vm;
  if (!cli::parse_options(opts, argc, argv, vm)) return 0;
  if (source.checkpoint.empty()) throw Error("serve: give --checkpoint DIR.");
  if (vm["max-n"].defaulted()) o.limits.max_n = std::min(o.limits.max_n, o.max_batch);
  if (o.limits.max_n > o.max_batch)
    throw Error("serve: --max-n " + std::to_string(o.limits.max_n) + " is larger than --max-batch " +
                std::to_string(o.max_batch) + "; a request's choices must fit the batch.");
  if (o.api_key.empty())
    if (const char* k = std::getenv("MAGELLANO_API_KEY")) o.api_key = k;
  if (!loopback(o.host) && o.api_key.empty())
    std::cerr << "warning: serve: listening on " << o.host << " without --api-key: anyone who reaches it can use it.\n";

  // SIGINT / SIGTERM go to one thread that stops the server; every other thread (the OpenCL
  // runtime's included, so this comes before the context) blocks them.
  std::signal(SIGPIPE, SIG_IGN);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto ctx = Context::create(cli::device_option(vm));
  const auto loaded = cli::load_model_source(source, *ctx);
  std::string why_none;
  const auto tok = cli::find_tokenizer(tokenizer_dir, source.checkpoint, loaded.config, why_none);
  if (tok && static_cast<int64_t>(tok->vocab_size()) > loaded.config.model.vocab_size)
    throw Error("serve: the tokenizer has " + std::to_string(tok->vocab_size()) + " ids but the model only " +
                std::to_string(loaded.config.model.vocab_size) + ": it is not this model's tokenizer (pass --tokenizer DIR).");
  if (!tok) std::cerr << "warning: serve: no tokenizer (" << why_none << "); prompts must be lists of token ids.\n";
  o.eos_ids = cli::find_eos(tok, source.checkpoint, loaded);
  o.prompt_as_prefix = loaded.config.train.objective.objective == data::Objective::prefix_lm;
  o.model_id = model_name.empty() ? fs::absolute(source.checkpoint).lexically_normal().filename().string() : model_name;
  if (o.model_id.empty()) o.model_id = fs::absolute(source.checkpoint).lexically_normal().parent_path().filename().string();
  o.chat_template = find_chat_template({tokenizer_dir, source.checkpoint}, o.chat_note);

  serve::Server server(*loaded.model, *ctx, tok ? &*tok : nullptr, o);
  const int port = server.bind();
  std::thread([&server, stop_signals] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    server.stop();
  }).detach();
  std::cout << "magellano serve: " << o.model_id << " on http://" << o.host << ":" << port << " (max batch "
            << o.max_batch << ", device " << ctx->device().name << ")" << std::endl;
  if (o.chat_template)
    std::cout << "magellano serve: chat template from " << o.chat_template->origin << " (tool calls read as: "
              << serve::tool_call_syntax_name(serve::tool_call_syntax(chat::chosen_source(*o.chat_template, true)))
              << ")" << std::endl;
  server.run();
  std::cout << "magellano serve: stopped" << std::endl;
  return 0;
}

cli::RegisterCommand reg{{"serve", "Serve a model over HTTP, OpenAI-compatible, with continuous batching", run_serve}};

}  // namespace
