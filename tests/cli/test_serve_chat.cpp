// POST /v1/chat/completions of `magellano serve` as a real process (tests/support/server_process.hpp)
// on the serve tests' model, whose folder gets a ChatML chat template in tokenizer_config.json:
// greedy chat completions, streamed or not, equal /v1/completions on the prompt the template
// renders (written out here by hand, so the renderer is checked too); the streamed chunks come in
// OpenAI's order (role, content, finish_reason, usage, [DONE]); every error path answers in
// OpenAI's error shape naming the field, and the server stays up. (Stop strings take the
// completions path, tested in test_serve.cpp: the random model's text is mostly invalid UTF-8
// here, so no stop string can be read back out of it.)
#include <httplib.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli.hpp"
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
      {json({{"messages", {user}}, {"logprobs", true}}).dump(), 400, "logprobs", "", "not supported for chat"},
      {json({{"messages", {user}}, {"echo", true}}).dump(), 400, "echo", "", "Unrecognized request argument"},
      {json({{"messages", {user}}, {"max_tokens", 65}}).dump(), 400, "max_tokens", "", "must be in [1, 64]"},
      {json({{"messages", {user}}, {"max_completion_tokens", 0}}).dump(), 400, "max_completion_tokens", "",
       "'max_completion_tokens' must be in [1, 64]"},
      {json({{"messages", {user}}, {"max_tokens", 5}, {"max_completion_tokens", 5}}).dump(), 400, "max_tokens", "", "not both"},
      {json({{"messages", {user}}, {"temperature", 3}}).dump(), 400, "temperature", "", "must be in [0, 2]"},
      {json({{"messages", {user}}, {"tools", "x"}}).dump(), 400, "tools", "", "must be a list"},
      {json({{"messages", {user}}, {"tool_choice", "required"}}).dump(), 400, "tool_choice", "", "\"auto\" or \"none\""},
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
                           json({{"messages", {user}}, {"max_tokens", 2}, {"tools", json::array({{{"type", "function"}}})},
                                 {"tool_choice", "auto"}})
                               .dump());
  EXPECT_EQ(s, 200) << b;
}
