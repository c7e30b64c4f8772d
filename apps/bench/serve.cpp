// `bench serve`: `magellano serve`'s throughput and latency under concurrent clients. A model of a
// config (random weights, default configs/tiny.json, no tokenizer: prompts are token ids) is
// served in this process on 127.0.0.1 (an ephemeral port) with --max-batch = the largest client
// count; for each client count C (default 1, 8, 32), C clients (threads with their own
// connections) send streaming completions back to back for --seconds: each a random prompt of
// --prompt-tokens ids, --max-tokens tokens (no end-of-text: every request generates them all),
// temperature 1 with a seed. Each client times, per request, the first token after sending
// (time to first token, TTFT: queueing, prefill and the first step) and the gaps between
// consecutive tokens (inter-token latency, ITL: one batched step plus the others' prefills
// that fell in between). Reported per C: aggregate generated tokens/s over the wall time from
// the first request to the last response, TTFT and ITL p50 / p99 (nearest rank over every
// request / every gap), requests completed, and the speed-up over the first C (extra.vs_first).
// Warm-up (untimed, before the first timed point): for every C of the list, C clients send one
// request each of the same prompt length and max_tokens at once, so every kernel the timed points
// run is built (prefill at the prompt length, decode at batch sizes up to C) and the pools are
// grown before timing starts; extra.warmup_requests counts them (the sum of the C's), and
// extra.ttft_max_ms shows the slowest first token of the point (a build left in a timed point shows
// there).
// Options: --config FILE, --clients 1,8,32, --seconds 5, --prompt-tokens 32, --max-tokens 32.
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <limits>
#include <mutex>
#include <random>
#include <thread>

#include "bench.hpp"
#include "magellano/runtime/error.hpp"
#include "magellano/serve/server.hpp"
#include "magellano/train/checkpoint.hpp"

namespace magellano::bench {
namespace {

using Clock = std::chrono::steady_clock;

double percentile(std::vector<double> v, double p) {  // nearest rank; 0 for none
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

struct ClientStats {
  std::vector<double> ttft, itl;  // seconds
  int64_t tokens = 0, requests = 0, failures = 0;
};

// One client: streaming requests until `end`, or `max_requests` of them (whichever comes first;
// the first request is sent whatever `end` is); every "data: {" line is a token (no tokenizer:
// the server sends one chunk per token).
void client_loop(int port, uint64_t seed, int64_t vocab, int64_t prompt_tokens, int64_t max_tokens,
                 Clock::time_point end, int64_t max_requests, ClientStats& st) {
  std::mt19937_64 rng(seed);
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(600, 0);
  for (int k = 0; k < max_requests && (k == 0 || Clock::now() < end); ++k) {
    nlohmann::json prompt = nlohmann::json::array();
    for (int64_t i = 0; i < prompt_tokens; ++i) prompt.push_back(static_cast<int64_t>(rng() % static_cast<uint64_t>(vocab)));
    const nlohmann::json body = {{"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 1.0},
                                 {"seed", static_cast<int64_t>(seed * 1000 + k)}, {"stream", true}};
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.body = body.dump();
    req.set_header("Content-Type", "application/json");
    std::string pending;
    std::vector<double> times;
    const auto t0 = Clock::now();
    req.content_receiver = [&](const char* d, size_t n, uint64_t, uint64_t) {
      const auto now = Clock::now();
      pending.append(d, n);
      for (size_t nl; (nl = pending.find('\n')) != std::string::npos; pending.erase(0, nl + 1))
        if (pending.compare(0, 7, "data: {") == 0) times.push_back(std::chrono::duration<double>(now - t0).count());
      return true;
    };
    const auto res = c.send(req);
    if (!res || res->status != 200 || static_cast<int64_t>(times.size()) != max_tokens) {
      ++st.failures;
      continue;
    }
    ++st.requests;
    st.tokens += max_tokens;
    st.ttft.push_back(times.front());
    for (size_t i = 1; i < times.size(); ++i) st.itl.push_back(times[i] - times[i - 1]);
  }
}

// The untimed warm-up (see the header): for each client count C, C concurrent clients send one
// request each. Returns the number of requests served; throws when one fails.
int64_t warm_up(int port, const std::vector<int64_t>& clients, int64_t vocab, int64_t prompt_tokens,
                int64_t max_tokens) {
  int64_t served = 0;
  for (int64_t C : clients) {
    std::vector<ClientStats> warm(static_cast<size_t>(C));
    std::vector<std::thread> ts;
    for (int64_t c = 0; c < C; ++c)
      ts.emplace_back(client_loop, port, static_cast<uint64_t>(999 + c), vocab, prompt_tokens, max_tokens, Clock::now(),
                      int64_t{1}, std::ref(warm[c]));
    for (auto& t : ts) t.join();
    for (const auto& w : warm) {
      if (w.failures > 0) throw Error("bench serve: a warm-up request failed at " + std::to_string(C) + " clients.");
      served += w.requests;
    }
  }
  return served;
}

std::vector<Result> run_serve(Context& ctx, const Peaks&, const Options& opts) {
  const std::string config = opts.has("config") ? opts.str("config") : find_config("tiny.json").string();
  const auto cfg = train::load_config(config);
  const auto clients = list_option(opts, "clients", "1,8,32");
  const double seconds = opts.number("seconds");
  if (!(seconds > 0)) throw Error("--seconds must be > 0.");
  const int64_t prompt_tokens = integer_in(opts, "prompt-tokens", 1, 1 << 20);
  const int64_t max_tokens = integer_in(opts, "max-tokens", 1, 1 << 20);
  const int64_t max_batch = *std::max_element(clients.begin(), clients.end());
  nn::Model model(ctx, train::model_spec(cfg.model), cfg.train.seed);

  serve::ServerOptions so;
  so.port = 0;
  so.model_id = std::filesystem::path(config).stem().string();
  so.max_batch = max_batch;
  so.max_queue = max_batch;
  so.limits.max_prompt_tokens = prompt_tokens;
  so.limits.max_tokens = max_tokens;
  so.limits.max_n = 1;
  serve::Server server(model, ctx, nullptr, so);
  const int port = server.bind();
  std::thread serving([&] { server.run(); });
  struct StopOnExit {
    serve::Server& s;
    std::thread& t;
    ~StopOnExit() {
      s.stop();
      t.join();
    }
  } stop_on_exit{server, serving};

  const int64_t warmup_requests = warm_up(port, clients, cfg.model.vocab_size, prompt_tokens, max_tokens);

  std::vector<Result> out;
  for (int64_t C : clients) {
    std::vector<ClientStats> stats(static_cast<size_t>(C));
    std::vector<std::thread> ts;
    const auto t0 = Clock::now();
    const auto end = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    for (int64_t c = 0; c < C; ++c)
      ts.emplace_back(client_loop, port, static_cast<uint64_t>(c + 1), cfg.model.vocab_size, prompt_tokens, max_tokens,
                      end, std::numeric_limits<int64_t>::max(), std::ref(stats[c]));
    for (auto& t : ts) t.join();
    const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
    ClientStats all;
    for (auto& s : stats) {
      all.ttft.insert(all.ttft.end(), s.ttft.begin(), s.ttft.end());
      all.itl.insert(all.itl.end(), s.itl.begin(), s.itl.end());
      all.tokens += s.tokens;
      all.requests += s.requests;
      all.failures += s.failures;
    }
    if (all.failures > 0)
      throw Error("bench serve: " + std::to_string(all.failures) + " of " + std::to_string(all.failures + all.requests) +
                  " requests failed at " + std::to_string(C) + " clients.");
    Result r;
    r.name = "serve";
    r.sizes = {{"config", so.model_id}, {"clients", C}, {"max_batch", max_batch}, {"prompt_tokens", prompt_tokens},
               {"max_tokens", max_tokens}, {"vocab", cfg.model.vocab_size}};
    r.tokens_per_s = static_cast<double>(all.tokens) / wall;
    r.median_s = percentile(all.itl, 50);
    r.repeats = static_cast<int>(all.requests);
    r.extra = {{"requests", all.requests}, {"wall_s", wall},
               {"ttft_p50_ms", percentile(all.ttft, 50) * 1e3}, {"ttft_p99_ms", percentile(all.ttft, 99) * 1e3},
               {"ttft_max_ms", percentile(all.ttft, 100) * 1e3}, {"warmup_requests", warmup_requests},
               {"itl_p50_ms", percentile(all.itl, 50) * 1e3}, {"itl_p99_ms", percentile(all.itl, 99) * 1e3},
               {"sampling", {{"temperature", 1.0}}}};
    if (!out.empty()) r.extra["vs_first"] = r.tokens_per_s / out.front().tokens_per_s;
    out.push_back(r);
  }
  return out;
}

RegisterBench reg{{"serve",
                   "magellano serve under concurrent streaming clients: tokens/s, TTFT and ITL p50 / p99",
                   {{"config", Key::text, "", "model config (default: configs/tiny.json), random weights"},
                    {"clients", Key::text, "1,8,32", "concurrent clients, comma-separated"},
                    {"seconds", Key::number, "5", "seconds each client count sends requests for"},
                    {"prompt-tokens", Key::integer, "32", "prompt length in tokens"},
                    {"max-tokens", Key::integer, "32", "tokens generated per request"}},
                   run_serve}};

}  // namespace
}  // namespace magellano::bench
