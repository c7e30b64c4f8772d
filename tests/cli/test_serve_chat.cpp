// POST /v1/chat/completions of `magellano serve` as a real process (tests/support/server_process.hpp)
// on the serve tests' model, whose folder gets a ChatML chat template in tokenizer_config.json:
// greedy chat completions, streamed or not, equal /v1/completions on the prompt the template
// renders (written out here by hand, so the renderer is checked too); the streamed chunks come in
// OpenAI's order (role, content, finish_reason, usage, [DONE]); every error path answers in
// OpenAI's error shape naming the field, and the server stays up. Chat logprobs equal completions'
// ones. A second server runs Qwen2.5's template (tests/fixtures/chat_templates/): a request with
// tools and an OpenAI-shaped tool history (arguments as JSON text) answers as /v1/completions does
// on jinja2's rendering of the same conversation (cases.json), streamed or not. (The random model
// never writes a tool call; reading calls back is tested on given replies in
// unit/test_tool_calls.cpp.) (Stop strings take the
// completions path, tested in test_serve.cpp: the random model's text is mostly invalid UTF-8
// here, so no stop string can be read back out of it.)
#include <httplib.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli.hpp"
#include "project_files.hpp"
#include "serve_checkpoint.hpp"
#include "server_process.hpp"
#include "temp_dir.hpp"

using namespace mgtest;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// Qwen-style ChatML with a system default and a refusal of unknown roles (raise_exception).
const char* kTemplate =
    "{%- if messages[0]['role'] != 'system' %}{{- '<|im_start|>system\\nYou are helpful.<|im_end|>\\n' }}{%- endif %}\n"
    "{%- for message in messages %}\n"
    "    {%- if message['role'] not in ['system', 'user', 'assistant'] %}\n"
    "        {{- raise_exception('Unknown role: ' + message['role']) }}\n"
    "    {%- endif %}\n"
    "    {%- if message.content is string %}{%- set content = message.content %}\n"
    "    {%- else %}{%- set content = message.content | map(attribute='text') | join('') %}{%- endif %}\n"
    "    {{- '<|im_start|>' + message['role'] + '\\n' + content + '<|im_end|>\\n' }}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}\n";

struct Stream {
  std::vector<json> chunks;
  bool done = false;
};

Stream parse_sse(const std::string& body) {
  Stream s;
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == ':') continue;
    EXPECT_EQ(line.rfind("data: ", 0), 0u) << line;
    EXPECT_FALSE(s.done) << "an event after [DONE]";
    if (line == "data: [DONE]") {
      s.done = true;
      continue;
    }
    s.chunks.push_back(json::parse(line.substr(6)));
  }
  return s;
}

class ServeChatTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (cli_path().empty()) return;
    dir_ = new TempDir();
    const fs::path ckpt = *dir_ / "ckpt";
    write_serve_checkpoint(ckpt);
    std::ofstream(ckpt / "tokenizer_config.json")
        << json({{"chat_template", kTemplate}, {"eos_token", {{"content", "<|endoftext|>"}}}}).dump();
    server_ = new ServerProcess({"--checkpoint", ckpt.string(), "--max-batch", "4", "--max-tokens", "64",
                                 "--max-prompt-tokens", "256"},
                                device_env());
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
    server_ = nullptr;
    dir_ = nullptr;
  }
  void SetUp() override { MG_REQUIRE_CLI(); }
  static std::pair<int, std::string> post(const std::string& path, const std::string& body) {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(60, 0);
    auto r = c.Post(path.c_str(), body, "application/json");
    if (!r) return {0, ""};
    return {r->status, r->body};
  }
  static TempDir* dir_;
  static ServerProcess* server_;
};
TempDir* ServeChatTest::dir_ = nullptr;
ServerProcess* ServeChatTest::server_ = nullptr;

const json kMessages = json::array({{{"role", "system"}, {"content", "The fox runs."}},
                                    {{"role", "user"}, {"content", "The quick brown fox"}},
                                    {{"role", "assistant"}, {"content", "jumps over the lazy dog."}},
                                    {{"role", "user"}, {"content", json::array({{{"type", "text"}, {"text", "A model "}},
                                                                                {{"type", "text"}, {"text", "reads"}}})}}});
const char* kRendered =
    "<|im_start|>system\nThe fox runs.<|im_end|>\n<|im_start|>user\nThe quick brown fox<|im_end|>\n"
    "<|im_start|>assistant\njumps over the lazy dog.<|im_end|>\n<|im_start|>user\nA model reads<|im_end|>\n"
    "<|im_start|>assistant\n";

}  // namespace

TEST_F(ServeChatTest, GreedyChatEqualsCompletionOfTheRenderedPrompt) {
  const auto [cs, cbody] = post("/v1/completions", json({{"prompt", kRendered}, {"temperature", 0}, {"max_tokens", 24}}).dump());
  ASSERT_EQ(cs, 200) << cbody;
  const json completion = json::parse(cbody);
  const std::string want = completion["choices"][0]["text"];
  ASSERT_FALSE(want.empty());

  const auto [s, b] = post("/v1/chat/completions",
                           json({{"model", "ckpt"}, {"messages", kMessages}, {"temperature", 0}, {"max_tokens", 24}}).dump());
  ASSERT_EQ(s, 200) << b;
  const json chat = json::parse(b);
  EXPECT_EQ(chat["object"], "chat.completion");
  EXPECT_EQ(chat["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  EXPECT_EQ(chat["model"], "ckpt");
  ASSERT_EQ(chat["choices"].size(), 1u);
  const json& choice = chat["choices"][0];
  EXPECT_EQ(choice["index"], 0);
  EXPECT_EQ(choice["message"]["role"], "assistant");
  EXPECT_EQ(choice["message"]["content"], want);
  EXPECT_EQ(choice["finish_reason"], completion["choices"][0]["finish_reason"]);
  EXPECT_TRUE(choice["logprobs"].is_null());
  EXPECT_EQ(chat["usage"], completion["usage"]);

  // The same through curl, streamed, with usage: role first, then the text, then finish_reason.
  const auto r = curl(server_->url() + "/v1/chat/completions",
                      {"-N", "-H", "Content-Type: application/json", "--data-binary",
                       json({{"messages", kMessages}, {"temperature", 0}, {"max_tokens", 24}, {"stream", true},
                             {"stream_options", {{"include_usage", true}}}})
                           .dump()});
  ASSERT_EQ(r.status, 200) << r.body;
  const Stream st = parse_sse(r.body);
  EXPECT_TRUE(st.done);
  ASSERT_GE(st.chunks.size(), 4u);
  std::string text;
  std::string finish;
  for (size_t k = 0; k < st.chunks.size(); ++k) {
    const json& c = st.chunks[k];
    EXPECT_EQ(c["object"], "chat.completion.chunk");
    EXPECT_EQ(c["id"], st.chunks[0]["id"]);
    if (k + 1 == st.chunks.size()) {  // the usage chunk
      EXPECT_TRUE(c["choices"].empty());
      EXPECT_EQ(c["usage"], completion["usage"]);
      continue;
    }
    ASSERT_EQ(c["choices"].size(), 1u);
    const json& d = c["choices"][0]["delta"];
    if (k == 0) {
      EXPECT_EQ(d, json({{"role", "assistant"}, {"content", ""}}));
      EXPECT_TRUE(c["choices"][0]["finish_reason"].is_null());
    } else if (k + 2 == st.chunks.size()) {
      EXPECT_EQ(d, json::object());
      finish = c["choices"][0]["finish_reason"];
    } else {
      EXPECT_FALSE(d.contains("role"));
      EXPECT_TRUE(c["choices"][0]["finish_reason"].is_null());
      text += d["content"].get<std::string>();
    }
  }
  EXPECT_EQ(text, want);
  EXPECT_EQ(finish, completion["choices"][0]["finish_reason"].get<std::string>());
}

TEST_F(ServeChatTest, ErrorsNameTheFieldAndTheServerStaysUp) {
  struct Case {
    std::string body;
    int status;
    std::string param, code, says;
  };
  const json user = {{"role", "user"}, {"content", "hi"}};
  const std::vector<Case> cases = {
      {"{", 400, "", "invalid_json", "not valid JSON"},
      {R"({"max_tokens": 3})", 400, "messages", "", "'messages' is required"},
      {R"({"messages": []})", 400, "messages", "", "non-empty list"},
      {R"({"messages": "hi"})", 400, "messages", "", "non-empty list"},
      {json({{"messages", {user, {{"content", "x"}}}}}).dump(), 400, "messages[1].role", "", "'messages[1].role' is required"},
      {json({{"messages", {{{"role", "user"}}}}}).dump(), 400, "messages[0].content", "", "'messages[0].content' is required"},
      {json({{"messages", {{{"role", "user"}, {"content", 5}}}}}).dump(), 400, "messages[0].content", "", "must be a string"},
      {json({{"messages", {{{"role", "user"}, {"content", {{{"type", "image_url"}, {"image_url", "x"}}}}}}}}).dump(), 400,
       "messages[0].content[0].type", "", "text parts only"},
      {json({{"messages", {{{"role", "user"}, {"content", {{{"type", "text"}}}}}}}}).dump(), 400,
       "messages[0].content[0].text", "", "must be a string"},
      {json({{"messages", {{{"role", "robot"}, {"content", "beep"}}}}}).dump(), 400, "messages", "chat_template_error",
       "Unknown role: robot"},
      {json({{"messages", {user}}, {"logprobs", true}, {"top_logprobs", 21}}).dump(), 400, "top_logprobs", "",
       "must be in [0, 20], got 21"},
      {json({{"messages", {user}}, {"logprobs", "true"}}).dump(), 400, "logprobs", "", "must be true or false"},
      {json({{"messages", {user}}, {"top_logprobs", 3}}).dump(), 400, "top_logprobs", "", "needs 'logprobs': true"},
      {json({{"messages", {user}}, {"tools", {{{"type", "function"}}}}}).dump(), 400, "tools[0].function", "",
       "'tools[0].function' is required"},
      {json({{"messages", {user}}, {"tool_choice", "auto"}}).dump(), 400, "tool_choice", "", "only allowed when 'tools'"},
      {json({{"messages", {user}}, {"echo", true}}).dump(), 400, "echo", "", "Unrecognized request argument"},
      {json({{"messages", {user}}, {"max_tokens", 65}}).dump(), 400, "max_tokens", "", "must be in [1, 64]"},
      {json({{"messages", {user}}, {"max_completion_tokens", 0}}).dump(), 400, "max_completion_tokens", "",
       "'max_completion_tokens' must be in [1, 64]"},
      {json({{"messages", {user}}, {"max_tokens", 5}, {"max_completion_tokens", 5}}).dump(), 400, "max_tokens", "", "not both"},
      {json({{"messages", {user}}, {"temperature", 3}}).dump(), 400, "temperature", "", "must be in [0, 2]"},
      {json({{"messages", {user}}, {"tools", "x"}}).dump(), 400, "tools", "", "must be a list"},
      {json({{"messages", {user}}, {"tools", {{{"type", "function"}, {"function", {{"name", "f"}}}}}}, {"tool_choice", "required"}})
           .dump(),
       400, "tool_choice", "", "cannot force a tool call"},
      {json({{"messages", {user}}, {"response_format", {{"type", "json_object"}}}}).dump(), 400, "response_format", "",
       "not supported"},
      {json({{"messages", {user}}, {"model", "gpt-4"}}).dump(), 404, "model", "model_not_found", "does not exist"},
      {json({{"messages", {{{"role", "user"}, {"content", std::string(2000, 'x')}}}}}).dump(), 400, "messages",
       "context_length_exceeded", "at most 256"},
  };
  for (const auto& c : cases) {
    const auto [status, body] = post("/v1/chat/completions", c.body);
    EXPECT_EQ(status, c.status) << c.body << " -> " << body;
    const json j = json::parse(body, nullptr, false);
    ASSERT_TRUE(j.is_object() && j.contains("error")) << c.body << " -> " << body;
    const json& e = j["error"];
    EXPECT_NE(e["message"].get<std::string>().find(c.says), std::string::npos) << c.body << " -> " << body;
    EXPECT_EQ(e["param"], c.param.empty() ? json(nullptr) : json(c.param)) << c.body << " -> " << body;
    if (!c.code.empty()) EXPECT_EQ(e["code"], c.code) << c.body;
  }
  EXPECT_TRUE(server_->alive());
  // Tools given: passed to the template (this one ignores them), tool_choice "auto" accepted.
  const auto [s, b] = post("/v1/chat/completions",
                           json({{"messages", {user}}, {"max_tokens", 2},
                                 {"tools", json::array({{{"type", "function"}, {"function", {{"name", "f"}}}}})},
                                 {"tool_choice", "auto"}})
                               .dump());
  EXPECT_EQ(s, 200) << b;
}

// Chat logprobs are the completions path's log-probabilities of the same tokens: greedy, the
// chosen token, its value and its top 5 equal /v1/completions' (logprobs 5) on the rendered
// prompt; top_logprobs 20 gives 20 alternatives, most likely first; the streamed chunks carry
// the same entries, split across them.
TEST_F(ServeChatTest, LogprobsEqualThoseOfCompletions) {
  const auto [cs, cbody] =
      post("/v1/completions", json({{"prompt", kRendered}, {"temperature", 0}, {"max_tokens", 12}, {"logprobs", 5}}).dump());
  ASSERT_EQ(cs, 200) << cbody;
  const json want = json::parse(cbody)["choices"][0]["logprobs"];
  const auto [s, b] = post("/v1/chat/completions", json({{"messages", kMessages}, {"temperature", 0}, {"max_tokens", 12},
                                                         {"logprobs", true}, {"top_logprobs", 5}})
                                                       .dump());
  ASSERT_EQ(s, 200) << b;
  const json lp = json::parse(b)["choices"][0]["logprobs"];
  ASSERT_TRUE(lp.contains("refusal") && lp["refusal"].is_null()) << lp;
  const json& content = lp["content"];
  ASSERT_EQ(content.size(), want["tokens"].size()) << b;
  ASSERT_EQ(content.size(), 12u);
  for (size_t i = 0; i < content.size(); ++i) {
    const json& e = content[i];
    EXPECT_EQ(e["token"], want["tokens"][i]) << i;
    EXPECT_EQ(e["logprob"], want["token_logprobs"][i]) << i;
    std::string bytes;
    for (const json& x : e["bytes"]) bytes += static_cast<char>(x.get<int>());
    bool utf8 = true;  // the token's text is its bytes, or (not UTF-8 on their own) U+FFFD in their place
    try {
      (void)json(bytes).dump();
    } catch (const json::exception&) {
      utf8 = false;
    }
    if (utf8) EXPECT_EQ(bytes, e["token"].get<std::string>()) << i;
    else EXPECT_NE(e["token"].get<std::string>().find("\xEF\xBF\xBD"), std::string::npos) << i;
    EXPECT_FALSE(bytes.empty()) << i;
    ASSERT_EQ(e["top_logprobs"].size(), 5u) << i;
    EXPECT_EQ(e["top_logprobs"][0]["logprob"], e["logprob"]) << "greedy picks the most likely, " << i;
    // Completions' top_logprobs is an object keyed by text (two tokens of one text share a key).
    json keyed = json::object();
    for (const json& t : e["top_logprobs"]) keyed[t["token"].get<std::string>()] = t["logprob"];
    EXPECT_EQ(keyed.size(), want["top_logprobs"][i].size()) << i;
    for (const auto& [k, v] : want["top_logprobs"][i].items()) {
      ASSERT_TRUE(keyed.contains(k)) << i << " " << k;
      if (keyed.size() == 5u) EXPECT_EQ(keyed[k], v) << i << " " << k;
    }
  }

  const auto [s20, b20] = post("/v1/chat/completions", json({{"messages", kMessages}, {"temperature", 0}, {"max_tokens", 3},
                                                             {"logprobs", true}, {"top_logprobs", 20}})
                                                           .dump());
  ASSERT_EQ(s20, 200) << b20;
  const json r20 = json::parse(b20);  // named: a range-for over a temporary's member would dangle
  for (const json& e : r20["choices"][0]["logprobs"]["content"]) {
    ASSERT_EQ(e["top_logprobs"].size(), 20u);
    for (size_t k = 1; k < 20; ++k) EXPECT_GE(e["top_logprobs"][k - 1]["logprob"], e["top_logprobs"][k]["logprob"]);
  }
  // logprobs without top_logprobs: the chosen tokens only.
  const auto [s0, b0] = post("/v1/chat/completions",
                             json({{"messages", kMessages}, {"temperature", 0}, {"max_tokens", 3}, {"logprobs", true}}).dump());
  ASSERT_EQ(s0, 200) << b0;
  const json r0 = json::parse(b0);
  for (const json& e : r0["choices"][0]["logprobs"]["content"]) EXPECT_TRUE(e["top_logprobs"].empty());

  const auto r = curl(server_->url() + "/v1/chat/completions",
                      {"-N", "-H", "Content-Type: application/json", "--data-binary",
                       json({{"messages", kMessages}, {"temperature", 0}, {"max_tokens", 12}, {"stream", true},
                             {"logprobs", true}, {"top_logprobs", 5}})
                           .dump()});
  ASSERT_EQ(r.status, 200) << r.body;
  json streamed = json::array();
  for (const json& c : parse_sse(r.body).chunks) {
    const json& l = c["choices"][0]["logprobs"];
    if (l.is_null()) continue;
    for (const json& e : l["content"]) streamed.push_back(e);
  }
  EXPECT_EQ(streamed, content);
}

namespace {

// The fixtures' case `name` (cases.json, jinja2's rendering), key order kept.
nlohmann::ordered_json fixture_case(const std::string& name) {
  std::ifstream in(fixture_file("chat_templates/cases.json"), std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  const auto all = nlohmann::ordered_json::parse(text.str());
  for (const auto& c : all["cases"])
    if (c["name"] == name) return c;
  ADD_FAILURE() << "no case " << name;
  return {};
}

class ServeToolsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (cli_path().empty()) return;
    dir_ = new TempDir();
    const fs::path ckpt = *dir_ / "ckpt";
    write_serve_checkpoint(ckpt);
    fs::copy_file(fixture_file("chat_templates/templates/qwen2.5.jinja"), ckpt / "chat_template.jinja");
    server_ = new ServerProcess({"--checkpoint", ckpt.string(), "--max-batch", "2", "--max-tokens", "16",
                                 "--max-prompt-tokens", "2048"},
                                device_env());
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
    server_ = nullptr;
    dir_ = nullptr;
  }
  void SetUp() override { MG_REQUIRE_CLI(); }
  static std::pair<int, json> post(const std::string& path, const std::string& body) {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(120, 0);
    auto r = c.Post(path.c_str(), body, "application/json");
    if (!r) return {0, json()};
    return {r->status, json::parse(r->body, nullptr, false)};
  }
  static TempDir* dir_;
  static ServerProcess* server_;
};
TempDir* ServeToolsTest::dir_ = nullptr;
ServerProcess* ServeToolsTest::server_ = nullptr;

}  // namespace

TEST_F(ServeToolsTest, ToolsAndToolHistoryRenderAsJinja2Does) {
  const auto c = fixture_case("qwen2.5.jinja:tools_openai");
  ASSERT_TRUE(c.contains("expected"));
  const auto [cs, completion] =
      post("/v1/completions", json({{"prompt", c["expected"]}, {"temperature", 0}, {"max_tokens", 8}}).dump());
  ASSERT_EQ(cs, 200) << completion;

  // The request as a client sends it: each call's arguments as JSON text.
  nlohmann::ordered_json messages = c["variables"]["messages"];
  for (auto& m : messages)
    if (m.contains("tool_calls"))
      for (auto& call : m["tool_calls"]) call["function"]["arguments"] = call["function"]["arguments"].dump();
  nlohmann::ordered_json body = {{"messages", messages}, {"tools", c["variables"]["tools"]}, {"temperature", 0},
                                 {"max_tokens", 8}, {"tool_choice", "auto"}};
  const auto [s, chat] = post("/v1/chat/completions", body.dump());
  ASSERT_EQ(s, 200) << chat;
  EXPECT_EQ(chat["usage"], completion["usage"]);
  const json& choice = chat["choices"][0];
  EXPECT_EQ(choice["message"]["content"], completion["choices"][0]["text"]);
  EXPECT_FALSE(choice["message"].contains("tool_calls"));  // a random model's text is no call
  EXPECT_EQ(choice["finish_reason"], completion["choices"][0]["finish_reason"]);

  // Streamed with tools: the reply is held back, then sent whole (role, content, finish, [DONE]).
  body["stream"] = true;
  const auto r = curl(server_->url() + "/v1/chat/completions",
                      {"-N", "-H", "Content-Type: application/json", "--data-binary", body.dump()});
  ASSERT_EQ(r.status, 200) << r.body;
  const Stream st = parse_sse(r.body);
  EXPECT_TRUE(st.done);
  const std::string text = completion["choices"][0]["text"];
  ASSERT_EQ(st.chunks.size(), text.empty() ? 2u : 3u) << r.body;
  EXPECT_EQ(st.chunks[0]["choices"][0]["delta"], json({{"role", "assistant"}, {"content", ""}}));
  if (!text.empty()) EXPECT_EQ(st.chunks[1]["choices"][0]["delta"], json({{"content", text}}));
  EXPECT_EQ(st.chunks.back()["choices"][0]["delta"], json::object());
  EXPECT_EQ(st.chunks.back()["choices"][0]["finish_reason"], completion["choices"][0]["finish_reason"]);

  // With logprobs: one per generated token, in the held-back content chunk.
  body["logprobs"] = true;
  const auto rl = curl(server_->url() + "/v1/chat/completions",
                       {"-N", "-H", "Content-Type: application/json", "--data-binary", body.dump()});
  ASSERT_EQ(rl.status, 200) << rl.body;
  const Stream stl = parse_sse(rl.body);
  ASSERT_EQ(stl.chunks.size(), 3u) << rl.body;
  EXPECT_EQ(stl.chunks[1]["choices"][0]["delta"], json({{"content", text}}));
  EXPECT_EQ(stl.chunks[1]["choices"][0]["logprobs"]["content"].size(), completion["usage"]["completion_tokens"]);
  body.erase("logprobs");

  // tool_choice "none" leaves the tools out of the prompt: fewer prompt tokens.
  body.erase("stream");
  body["tool_choice"] = "none";
  const auto [sn, none] = post("/v1/chat/completions", body.dump());
  ASSERT_EQ(sn, 200) << none;
  EXPECT_LT(none["usage"]["prompt_tokens"].get<int64_t>(), completion["usage"]["prompt_tokens"].get<int64_t>());
  EXPECT_TRUE(server_->alive());
}
