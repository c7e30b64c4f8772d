// `magellano serve` as a real process on 127.0.0.1 (an ephemeral port), driven by curl and by a
// C++ client (cpp-httplib): completions with and without streaming equal `magellano generate`'s
// greedy text; concurrent clients get exactly what they get alone; stop strings; a client that
// disconnects frees its row; every error path answers in OpenAI's error shape and the server
// stays up; the API key; a bounded load test (MAGELLANO_SERVE_LOAD_SECONDS, default 3; the
// 60 s run: scripts/serve_load.sh). The model: random weights, Mamba + attention + MoE blocks
// ("MAE"), a 300-id tokenizer trained on a short text, so everything runs in seconds on PoCL.
#include <httplib.h>

#include <atomic>
#include <cmath>
#include <fstream>
#include <iostream>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "cli.hpp"
#include "harness.hpp"
#include "serve_checkpoint.hpp"
#include "server_process.hpp"
#include "temp_dir.hpp"

using namespace mgtest;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kPrompts = {"The quick brown fox", "A model reads", "the dog sleeps", "one token",
                                           "The fox runs on and", "text, then", "lazy", "over the"};

// One SSE stream's events: the JSON chunks in order and whether it ended with [DONE].
struct Stream {
  std::vector<json> chunks;
  bool done = false;
  std::string text;  // choice 0's text, concatenated
  std::string finish;
};

Stream parse_sse(const std::string& body) {
  Stream s;
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == ':') continue;
    EXPECT_EQ(line.rfind("data: ", 0), 0u) << line;
    EXPECT_FALSE(s.done) << "an event after [DONE]";
    const std::string data = line.substr(6);
    if (data == "[DONE]") {
      s.done = true;
      continue;
    }
    json j = json::parse(data);
    for (const auto& c : j["choices"]) {
      if (c["index"] == 0) s.text += c["text"].get<std::string>();
      if (!c["finish_reason"].is_null()) s.finish = c["finish_reason"];
    }
    s.chunks.push_back(std::move(j));
  }
  return s;
}

json body(json extra) {
  json b = {{"model", "ckpt"}, {"temperature", 0}, {"max_tokens", 12}};
  for (auto& [k, v] : extra.items()) b[k] = v;
  return b;
}

// The served model and its server, shared by the tests of this file.
class ServeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (cli_path().empty()) return;
    dir_ = new TempDir();
    write_serve_checkpoint(*dir_ / "ckpt");
    server_ = new ServerProcess({"--checkpoint", (*dir_ / "ckpt").string(), "--max-batch", "8", "--max-queue", "80",
                                 "--max-tokens", "4000", "--max-prompt-tokens", "64", "--max-body-bytes", "20000"},
                                device_env());
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
    server_ = nullptr;
    dir_ = nullptr;
  }
  void SetUp() override { MG_REQUIRE_CLI(); }
  static fs::path checkpoint() { return *dir_ / "ckpt"; }
  static std::string url(const std::string& path) { return server_->url() + path; }
  static httplib::Client client() {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(60, 0);
    return c;
  }
  // POST /v1/completions through httplib; the parsed body and the status.
  static std::pair<int, json> post(const json& b, const std::string& path = "/v1/completions") {
    auto c = client();
    auto r = c.Post(path.c_str(), b.dump(), "application/json");
    if (!r) return {0, json()};
    return {r->status, json::parse(r->body, nullptr, false)};
  }
  // The same, streaming, through httplib's content receiver.
  static Stream post_stream(json b) {
    b["stream"] = true;
    auto c = client();
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.body = b.dump();
    req.set_header("Content-Type", "application/json");
    std::string all;
    req.content_receiver = [&](const char* d, size_t n, uint64_t, uint64_t) {
      all.append(d, n);
      return true;
    };
    auto r = c.send(req);
    EXPECT_TRUE(r) << "no response: " << httplib::to_string(r.error());
    if (r) EXPECT_EQ(r->get_header_value("Content-Type"), "text/event-stream");
    return parse_sse(all);
  }
  static std::map<std::string, double> metrics() {
    std::map<std::string, double> m;
    std::istringstream in(curl(url("/metrics")).body);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      const size_t sp = line.rfind(' ');
      if (sp == std::string::npos) continue;
      m[line.substr(0, sp)] = std::strtod(line.c_str() + sp + 1, nullptr);
    }
    return m;
  }
  // `magellano generate --json` greedy on the same checkpoint: the reference text.
  static std::string generate_text(const std::string& prompt, int max_tokens) {
    const auto r = run_cli_split({"generate", "--checkpoint", checkpoint().string(), "--prompt", prompt,
                                  "--max-new-tokens", std::to_string(max_tokens), "--temperature", "0", "--json"},
                                 device_env());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::istringstream in(r.output);
    std::string line;
    while (std::getline(in, line))
      if (!line.empty() && line[0] == '{') return json::parse(line)["text"];
    ADD_FAILURE() << "no JSON line from generate: " << r.output;
    return {};
  }
  static TempDir* dir_;
  static ServerProcess* server_;
};
TempDir* ServeTest::dir_ = nullptr;
ServerProcess* ServeTest::server_ = nullptr;

TEST_F(ServeTest, HealthModelsAndMetricsWithCurl) {
  auto h = curl(url("/health"));
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(json::parse(h.body)["status"], "ok");
  auto m = curl(url("/v1/models"));
  ASSERT_EQ(m.status, 200);
  const json models = json::parse(m.body);
  EXPECT_EQ(models["object"], "list");
  ASSERT_EQ(models["data"].size(), 1u);
  EXPECT_EQ(models["data"][0]["id"], "ckpt");
  const auto metrics_text = curl(url("/metrics"));
  EXPECT_EQ(metrics_text.status, 200);
  for (const char* name : {"magellano_requests_total", "magellano_queue_depth", "magellano_batch_size",
                           "magellano_tokens_per_second", "magellano_time_to_first_token_seconds_bucket",
                           "magellano_device_memory_bytes{kind=\"in_use\"}"})
    EXPECT_NE(metrics_text.body.find(name), std::string::npos) << name;
}

// Greedy completions equal `magellano generate` on the same prompt, through curl, httplib, and
// streamed (the chunks concatenate to the same text and end with [DONE]).
TEST_F(ServeTest, CompletionEqualsGenerateStreamedOrNot) {
  const std::string prompt = kPrompts[0];
  const std::string expected = generate_text(prompt, 20);
  const auto c = curl(url("/v1/completions"), {"-H", "Content-Type: application/json", "-d",
                                               body({{"prompt", prompt}, {"max_tokens", 20}}).dump()});
  ASSERT_EQ(c.status, 200) << c.body;
  const json j = json::parse(c.body);
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["model"], "ckpt");
  ASSERT_EQ(j["choices"].size(), 1u);
  EXPECT_EQ(j["choices"][0]["text"], expected);
  EXPECT_TRUE(j["choices"][0]["logprobs"].is_null());
  EXPECT_GT(j["usage"]["prompt_tokens"].get<int>(), 0);
  EXPECT_EQ(j["usage"]["total_tokens"].get<int>(),
            j["usage"]["prompt_tokens"].get<int>() + j["usage"]["completion_tokens"].get<int>());
  const std::string finish = j["choices"][0]["finish_reason"];
  EXPECT_TRUE(finish == "length" || finish == "stop") << finish;
  if (finish == "length") {
    EXPECT_EQ(j["usage"]["completion_tokens"], 20);
  }

  const Stream s = post_stream(body({{"prompt", prompt}, {"max_tokens", 20}}));
  EXPECT_TRUE(s.done);
  EXPECT_EQ(s.text, expected);
  EXPECT_EQ(s.finish, finish);
  ASSERT_FALSE(s.chunks.empty());
  EXPECT_TRUE(s.chunks.back()["choices"][0]["finish_reason"].is_string());

  // curl -N sees the same stream.
  const auto cs = curl(url("/v1/completions"), {"-N", "-H", "Content-Type: application/json", "-d",
                                                body({{"prompt", prompt}, {"max_tokens", 20}, {"stream", true}}).dump()});
  ASSERT_EQ(cs.status, 200);
  const Stream s2 = parse_sse(cs.body);
  EXPECT_TRUE(s2.done);
  EXPECT_EQ(s2.text, expected);

  // echo puts the prompt in front; a token-id prompt is taken as is; logprobs are one per token.
  const auto [st, e] = post(body({{"prompt", prompt}, {"max_tokens", 20}, {"echo", true}}));
  ASSERT_EQ(st, 200);
  EXPECT_EQ(e["choices"][0]["text"], prompt + expected);
  const auto [st2, lp] = post(body({{"prompt", prompt}, {"max_tokens", 5}, {"logprobs", 2}}));
  ASSERT_EQ(st2, 200) << lp.dump();
  const json& l = lp["choices"][0]["logprobs"];
  EXPECT_EQ(l["tokens"].size(), lp["usage"]["completion_tokens"].get<size_t>());
  for (size_t i = 0; i < l["token_logprobs"].size(); ++i) {
    EXPECT_LE(l["token_logprobs"][i].get<double>(), 0.0);
    // two alternatives, or one when both have the same text (ids the tokenizer lacks decode to "")
    EXPECT_GE(l["top_logprobs"][i].size(), 1u);
    EXPECT_LE(l["top_logprobs"][i].size(), 2u);
    // greedy: the chosen token is the most likely one
    double best = -1e300;
    for (auto& [k, v] : l["top_logprobs"][i].items()) best = std::max(best, v.get<double>());
    EXPECT_DOUBLE_EQ(l["token_logprobs"][i].get<double>(), best);
  }
  // usage in the stream when asked
  const Stream su = post_stream(body({{"prompt", prompt}, {"stream_options", {{"include_usage", true}}}}));
  ASSERT_FALSE(su.chunks.empty());
  EXPECT_TRUE(su.chunks.back()["choices"].empty());
  EXPECT_GT(su.chunks.back()["usage"]["completion_tokens"].get<int>(), 0);
}

// Every prompt alone, then all at once from 8 threads (half streaming): the same texts.
TEST_F(ServeTest, ConcurrentGreedyEqualsSolo) {
  std::vector<std::string> solo;
  for (const auto& p : kPrompts) {
    const auto [st, j] = post(body({{"prompt", p}, {"max_tokens", 24}}));
    ASSERT_EQ(st, 200);
    solo.push_back(j["choices"][0]["text"]);
  }
  for (int round = 0; round < 2; ++round) {
    std::vector<std::string> got(kPrompts.size());
    std::vector<std::thread> threads;
    for (size_t i = 0; i < kPrompts.size(); ++i)
      threads.emplace_back([&, i] {
        const json b = body({{"prompt", kPrompts[i]}, {"max_tokens", 24}});
        if ((i + round) % 2) got[i] = post_stream(b).text;
        else got[i] = post(b).second["choices"][0]["text"];
      });
    for (auto& t : threads) t.join();
    for (size_t i = 0; i < kPrompts.size(); ++i) EXPECT_EQ(got[i], solo[i]) << "prompt " << i << " round " << round;
  }
  // n = 3 greedy choices are three equal texts; a token-id prompt works too.
  const auto [st, j] = post(body({{"prompt", json::array({5, 6, 7})}, {"n", 3}}));
  ASSERT_EQ(st, 200) << j.dump();
  ASSERT_EQ(j["choices"].size(), 3u);
  EXPECT_EQ(j["choices"][0]["text"], j["choices"][1]["text"]);
  EXPECT_EQ(j["choices"][0]["text"], j["choices"][2]["text"]);
  // Seeded sampling is reproducible, alone or not.
  const json sampled = body({{"prompt", kPrompts[1]}, {"temperature", 1.0}, {"seed", 7}, {"max_tokens", 16}});
  EXPECT_EQ(post(sampled).second["choices"][0]["text"], post(sampled).second["choices"][0]["text"]);
}

// A stop string cuts the text before it (finish_reason "stop"), streamed or not.
TEST_F(ServeTest, StopStrings) {
  const std::string prompt = kPrompts[2];
  const auto [st, j] = post(body({{"prompt", prompt}, {"max_tokens", 30}}));
  ASSERT_EQ(st, 200);
  const std::string full = j["choices"][0]["text"];
  ASSERT_GE(full.size(), 6u) << "the model's text is too short to pick a stop string from: '" << full << "'";
  const std::string stop = full.substr(3, 2);
  const std::string expected = full.substr(0, full.find(stop));
  const auto [st2, k] = post(body({{"prompt", prompt}, {"max_tokens", 30}, {"stop", json::array({"\x01", stop})}}));
  ASSERT_EQ(st2, 200);
  EXPECT_EQ(k["choices"][0]["text"], expected);
  EXPECT_EQ(k["choices"][0]["finish_reason"], "stop");
  const Stream s = post_stream(body({{"prompt", prompt}, {"max_tokens", 30}, {"stop", stop}}));
  EXPECT_EQ(s.text, expected);
  EXPECT_EQ(s.finish, "stop");
}

// A streaming client that goes away frees its row long before max_tokens.
TEST_F(ServeTest, DisconnectFreesTheRow) {
  const double tokens_before = metrics()["magellano_generated_tokens_total"];
  {
    auto c = client();
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.body = body({{"prompt", kPrompts[3]}, {"max_tokens", 400}, {"stream", true}, {"stop", "\x01"}}).dump();
    req.set_header("Content-Type", "application/json");
    int events = 0;
    req.content_receiver = [&](const char* d, size_t n, uint64_t, uint64_t) {
      events += static_cast<int>(std::count(d, d + n, '\n'));
      return events < 6;  // false: the client closes the connection
    };
    c.send(req);
  }
  bool freed = false;
  for (int i = 0; i < 100 && !freed; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const auto m = metrics();
    freed = m.at("magellano_batch_size") == 0 && m.at("magellano_queue_depth") == 0;
  }
  EXPECT_TRUE(freed) << "the row was not freed after the client left";
  EXPECT_LT(metrics()["magellano_generated_tokens_total"] - tokens_before, 400);
  EXPECT_EQ(curl(url("/health")).status, 200);
}

// A non-streaming client that goes away is found out too (the server's heartbeat write fails).
TEST_F(ServeTest, NonStreamingDisconnectFreesTheRow) {
  const double tokens_before = metrics()["magellano_generated_tokens_total"];
  {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(0, 300000);  // gives up (and closes) 0.3 s into the wait
    auto r = c.Post("/v1/completions", body({{"prompt", kPrompts[4]}, {"max_tokens", 3000}, {"stop", "\x01"}}).dump(),
                    "application/json");
    EXPECT_FALSE(r) << "the client was meant to time out";
  }
  bool freed = false;
  for (int i = 0; i < 100 && !freed; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    freed = metrics().at("magellano_batch_size") == 0;
  }
  EXPECT_TRUE(freed) << "the row was not freed after the client left";
  EXPECT_LT(metrics()["magellano_generated_tokens_total"] - tokens_before, 3000);
}

// Each error: its status, OpenAI's shape, the parameter it names; the server stays up.
TEST_F(ServeTest, ErrorPaths) {
  struct Case {
    std::string path, body;
    int status;
    std::string param, code, says;
  };
  const std::string big(30000, 'x');
  const std::vector<Case> cases = {
      {"/v1/completions", "{not json", 400, "", "invalid_json", "not valid JSON"},
      {"/v1/completions", "[1, 2]", 400, "", "invalid_json", "must be a JSON object"},
      {"/v1/completions", R"({"prompt": "hi", "max_tokens": "ten"})", 400, "max_tokens", "", "must be an integer"},
      {"/v1/completions", R"({"prompt": "hi", "max_tokens": 0})", 400, "max_tokens", "", "must be in [1, 4000]"},
      {"/v1/completions", R"({"prompt": "hi", "max_tokens": 4001})", 400, "max_tokens", "", "must be in [1, 4000]"},
      {"/v1/completions", R"({"prompt": "hi", "temperature": -1})", 400, "temperature", "", "must be in [0, 2]"},
      {"/v1/completions", R"({"prompt": "hi", "top_p": "x"})", 400, "top_p", "", "must be a number"},
      {"/v1/completions", R"({"prompt": "hi", "stop": [1]})", 400, "stop", "", "list of strings"},
      {"/v1/completions", R"({"prompt": "hi", "stop": ["a","b","c","d","e"]})", 400, "stop", "", "at most 4"},
      {"/v1/completions", R"({"prompt": "hi", "n": 9})", 400, "n", "", "must be in [1, 4]"},
      {"/v1/completions", R"({"prompt": "hi", "presence_penalty": 0.5})", 400, "presence_penalty", "", "repetition_penalty"},
      {"/v1/completions", R"({"prompt": "hi", "frequency_penalty": 1})", 400, "frequency_penalty", "", "not supported"},
      {"/v1/completions", R"({"prompt": "hi", "logit_bias": {"5": 1}})", 400, "logit_bias", "", "not supported"},
      {"/v1/completions", R"({"prompt": "hi", "best_of": 3})", 400, "best_of", "", "not supported"},
      {"/v1/completions", R"({"prompt": "hi", "echo": true, "logprobs": 1})", 400, "logprobs", "", "echo"},
      {"/v1/completions", R"({"prompt": "hi", "min_p": 0.1})", 400, "min_p", "", "Unrecognized request argument"},
      {"/v1/completions", R"({"prompt": "hi", "stream_options": {"include_usage": true}})", 400, "stream_options", "", "only allowed"},
      {"/v1/completions", R"({"max_tokens": 3})", 400, "prompt", "", "'prompt' is required"},
      {"/v1/completions", R"({"prompt": ""})", 400, "prompt", "", "empty"},
      {"/v1/completions", R"({"prompt": ["a", "b"]})", 400, "prompt", "", "one per request"},
      {"/v1/completions", R"({"prompt": [1, 300]})", 400, "prompt", "", "outside the model's vocabulary"},
      {"/v1/completions", R"({"prompt": [1, -2]})", 400, "prompt", "", "token ids must be"},
      {"/v1/completions", R"({"prompt": {"a": 1}})", 400, "prompt", "", "a string or a non-empty list"},
      {"/v1/completions", json({{"prompt", std::string(400, 'a') + " fox"}}).dump(), 400, "prompt",
       "context_length_exceeded", "at most 64"},
      {"/v1/completions", R"({"prompt": "hi", "model": "gpt-4"})", 404, "model", "model_not_found", "does not exist"},
      {"/v1/completions", R"({"prompt": "hi", "model": 3})", 400, "model", "", "must be a string"},
      {"/v1/completions", json({{"prompt", big}}).dump(), 413, "", "body_too_large", "too large"},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "hi"}]})", 400, "messages",
       "chat_template_unsupported", "no chat template"},
      {"/v1/chat/completions", "{", 400, "", "invalid_json", "not valid JSON"},
      {"/v1/nothing", "{}", 404, "", "not_found", "Unknown route"},
  };
  for (const auto& c : cases) {
    auto r = curl(url(c.path), {"-H", "Content-Type: application/json", "--data-binary", c.body});
    EXPECT_EQ(r.status, c.status) << c.body << " -> " << r.body;
    const json j = json::parse(r.body, nullptr, false);
    ASSERT_TRUE(j.is_object() && j.contains("error")) << c.body << " -> " << r.body;
    const json& e = j["error"];
    EXPECT_NE(e["message"].get<std::string>().find(c.says), std::string::npos) << c.body << " -> " << r.body;
    EXPECT_TRUE(e["type"].is_string());
    EXPECT_EQ(e["param"], c.param.empty() ? json(nullptr) : json(c.param)) << c.body;
    if (!c.code.empty()) EXPECT_EQ(e["code"], c.code) << c.body;
    EXPECT_TRUE(e.contains("code"));
  }
  const auto get_completions = curl(url("/v1/completions"));  // GET on a POST route
  EXPECT_EQ(get_completions.status, 404);
  EXPECT_TRUE(json::parse(get_completions.body, nullptr, false).contains("error"));
  EXPECT_TRUE(server_->alive());
  EXPECT_EQ(curl(url("/health")).status, 200);
  EXPECT_EQ(post(body({{"prompt", "fox"}})).first, 200);
}

// Bad command lines and an address in use: one clear line, a non-zero exit.
TEST_F(ServeTest, BadCommandLineIsOneClearLine) {
  const std::string ckpt = checkpoint().string();
  struct Case {
    std::vector<std::string> args;
    int code;
    std::string says;
  };
  const std::vector<Case> cases = {
      {{"serve"}, 1, "serve: give --checkpoint DIR."},
      {{"serve", "--checkpoint", ckpt, "--port", "70000"}, 2, "--port must be in [0, 65535]"},
      {{"serve", "--checkpoint", ckpt, "--max-batch", "0"}, 2, "--max-batch must be in [1, 4096]"},
      {{"serve", "--checkpoint", ckpt, "--max-batch", "2", "--max-n", "3"}, 1, "--max-n 3 is larger than --max-batch 2"},
      {{"serve", "--checkpoint", (checkpoint() / "nope").string(), "--port", "0"}, 1, "nope"},
      {{"serve", "--checkpoint", ckpt, "--host", "127.0.0.1", "--port", std::to_string(server_->port())}, 1,
       "cannot listen on 127.0.0.1:" + std::to_string(server_->port())},
  };
  for (const auto& c : cases) EXPECT_TRUE(fails_with_one_line(run_cli_split(c.args, device_env()), c.code, c.says));
}

// A server of one row and no queue answers 429 while its row is busy.
TEST_F(ServeTest, QueueFullIs429) {
  ServerProcess small({"--checkpoint", checkpoint().string(), "--max-batch", "1", "--max-queue", "0"}, device_env());
  std::atomic<bool> streaming{false}, answered{false};
  std::thread busy([&] {
    httplib::Client c("127.0.0.1", small.port());
    c.set_read_timeout(60, 0);
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.body = body({{"prompt", "fox"}, {"max_tokens", 500}, {"stream", true}, {"stop", "\x01"}}).dump();
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) {
      streaming = true;
      return !answered;  // holds the row until the second request has its answer
    };
    c.send(req);
  });
  while (!streaming) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const auto r = curl(small.url() + "/v1/completions",
                      {"-H", "Content-Type: application/json", "-d", body({{"prompt", "dog"}}).dump()});
  answered = true;
  busy.join();
  EXPECT_EQ(r.status, 429) << r.body;
  EXPECT_EQ(json::parse(r.body)["error"]["code"], "queue_full");
  EXPECT_EQ(small.stop(), 0);  // SIGTERM: a clean exit
}

TEST_F(ServeTest, ApiKey) {
  ServerProcess keyed({"--checkpoint", checkpoint().string(), "--api-key", "s3cret"}, device_env());
  const std::vector<std::string> json_ct = {"-H", "Content-Type: application/json", "-d", body({{"prompt", "fox"}}).dump()};
  auto with = [&](std::vector<std::string> extra) {
    extra.insert(extra.end(), json_ct.begin(), json_ct.end());
    return curl(keyed.url() + "/v1/completions", extra);
  };
  auto none = with({});
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(json::parse(none.body)["error"]["code"], "invalid_api_key");
  EXPECT_EQ(with({"-H", "Authorization: Bearer wrong"}).status, 401);
  EXPECT_EQ(with({"-H", "Authorization: Bearer s3cret"}).status, 200);
  EXPECT_EQ(curl(keyed.url() + "/v1/models").status, 401);
  EXPECT_EQ(curl(keyed.url() + "/metrics").status, 401);
  EXPECT_EQ(curl(keyed.url() + "/v1/models", {"-H", "Authorization: Bearer s3cret"}).status, 200);
  EXPECT_EQ(curl(keyed.url() + "/health").status, 200);  // open: for load balancers
}

// 64 clients send requests for a few seconds (half streaming, prompts in turn): no error, every
// text equals that prompt's text alone, every stream ends with [DONE]; afterwards the queue and
// the batch are empty and device memory is back to where it was after a first round.
TEST_F(ServeTest, LoadSixtyFourClients) {
  const char* env = std::getenv("MAGELLANO_SERVE_LOAD_SECONDS");
  const double seconds = env ? std::atof(env) : 3.0;
  std::vector<std::string> solo;
  for (const auto& p : kPrompts) solo.push_back(post(body({{"prompt", p}, {"max_tokens", 8}})).second["choices"][0]["text"]);
  auto round = [&](double duration, std::atomic<int>& errors, std::atomic<int>& done) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(duration);
    std::vector<std::thread> clients;
    for (int t = 0; t < 64; ++t)
      clients.emplace_back([&, t] {
        for (int k = 0; k == 0 || std::chrono::steady_clock::now() < end; ++k) {
          const size_t i = static_cast<size_t>(t + k) % kPrompts.size();
          const json b = body({{"prompt", kPrompts[i]}, {"max_tokens", 8}});
          std::string text;
          if ((t + k) % 2) {
            const Stream s = post_stream(b);
            if (!s.done) ++errors;
            text = s.text;
          } else {
            const auto [st, j] = post(b);
            if (st != 200) {
              ++errors;
              continue;
            }
            text = j["choices"][0]["text"];
          }
          if (text != solo[i]) ++errors;
          ++done;
        }
      });
    for (auto& c : clients) c.join();
  };
  std::atomic<int> errors{0}, done{0};
  round(0.0, errors, done);  // one request per client: the pools reach their size
  const double idle_memory = metrics()["magellano_device_memory_bytes{kind=\"in_use\"}"];
  round(seconds, errors, done);
  EXPECT_EQ(errors, 0) << "of " << done << " requests";
  RecordProperty("requests", done.load());
  std::cout << "[ load     ] " << done << " requests from 64 clients in " << seconds << " s\n";
  EXPECT_GE(done, 128);
  const auto m = metrics();
  EXPECT_EQ(m.at("magellano_queue_depth"), 0);
  EXPECT_EQ(m.at("magellano_batch_size"), 0);
  EXPECT_EQ(m.at("magellano_device_memory_bytes{kind=\"in_use\"}"), idle_memory);
  EXPECT_GT(m.at("magellano_batch_rows_total") / m.at("magellano_decode_steps_total"), 1.5) << "requests were not batched";
  EXPECT_TRUE(server_->alive());
}

}  // namespace

// A prefix-LM checkpoint (train.objective "prefix_lm"; its Mamba blocks also run over the reversed
// prefix, model.bidirectional_prefix): the server prefills each prompt as its prefix, as
// `magellano generate` does for such a checkpoint, so the greedy texts agree; and the same weights
// served as a causal model give the first token another log-probability (the prefix really
// reaches the prefill).
TEST(ServePrefixLm, PromptsArePrefilledAsTheirPrefix) {
  MG_REQUIRE_CLI();
  const TempDir d;
  const fs::path causal = d.path() / "causal" / "ckpt", prefixed = d.path() / "prefix" / "ckpt";  // both "ckpt"
  write_serve_checkpoint(causal);
  fs::create_directories(prefixed.parent_path());
  fs::copy(causal, prefixed, fs::copy_options::recursive);
  json cfg = json::parse(std::ifstream(prefixed / "config.json"));
  cfg["train"]["objective"] = "prefix_lm";
  cfg["model"]["bidirectional_prefix"] = true;
  std::ofstream(prefixed / "config.json") << cfg.dump(2);
  const std::string prompt = kPrompts[1];
  const auto r = run_cli_split({"generate", "--checkpoint", prefixed.string(), "--prompt", prompt,
                                "--max-new-tokens", "12", "--temperature", "0", "--json"},
                               device_env());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string expected;
  std::istringstream lines(r.output);
  for (std::string line; std::getline(lines, line);)
    if (!line.empty() && line[0] == '{') expected = json::parse(line)["text"];
  double first_logprob[2] = {0, 0};
  for (const int prefix : {1, 0}) {
    const ServerProcess server({"--checkpoint", (prefix ? prefixed : causal).string()}, device_env());
    httplib::Client c("127.0.0.1", server.port());
    c.set_read_timeout(60, 0);
    const auto res = c.Post("/v1/completions", body({{"prompt", prompt}, {"logprobs", 1}}).dump(), "application/json");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    const json j = json::parse(res->body);
    if (prefix) EXPECT_EQ(j["choices"][0]["text"], expected);
    first_logprob[prefix] = j["choices"][0]["logprobs"]["token_logprobs"][0].get<double>();
  }
  EXPECT_GT(std::abs(first_logprob[1] - first_logprob[0]), 1e-4) << first_logprob[0] << " " << first_logprob[1];
}

