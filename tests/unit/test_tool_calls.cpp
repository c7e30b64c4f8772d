// Tool calls read back out of a chat reply (serve/tool_calls.hpp): each syntax on well-formed
// replies (one call, several, text around them, a last <tool_call> left unclosed at the
// end-of-turn), and on malformed and partial ones, which must come back as plain content, whole;
// the syntax chosen for each template of tests/fixtures/chat_templates/templates/; and the
// OpenAI shapes the server builds from a parsed reply (message.tool_calls, the finish reason,
// the streamed delta) and from log-probabilities (chat logprobs with bytes).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "magellano/serve/openai_json.hpp"
#include "magellano/serve/tool_calls.hpp"
#include "project_files.hpp"

using namespace magellano::serve;
using nlohmann::json;

namespace {

// name(arguments) per call, for compact expectations.
std::vector<std::string> calls_of(const ParsedReply& p) {
  std::vector<std::string> out;
  for (const auto& c : p.calls) out.push_back(c.name + c.arguments);
  return out;
}

void expect_plain(ToolCallSyntax s, const std::string& reply) {
  const ParsedReply p = parse_tool_calls(s, reply);
  EXPECT_TRUE(p.calls.empty()) << reply;
  EXPECT_EQ(p.content, reply) << "plain content must come back unchanged";
}

using V = std::vector<std::string>;

}  // namespace

TEST(ToolCalls, Hermes) {
  const auto S = ToolCallSyntax::hermes;
  ParsedReply p = parse_tool_calls(S, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Zürich\", \"days\": 2}}\n</tool_call>");
  EXPECT_EQ(calls_of(p), V{R"(get_weather{"city":"Zürich","days":2})"});
  EXPECT_EQ(p.content, "");
  // Text before, two calls, whitespace between; "parameters" accepted for "arguments"; no arguments: {}.
  p = parse_tool_calls(S, "Let me check.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": [1, \"</\"]}}\n</tool_call>\n"
                          "<tool_call>{\"name\": \"b\", \"parameters\": {}}</tool_call>\n<tool_call>{\"name\": \"c\"}</tool_call>  ");
  EXPECT_EQ(calls_of(p), (V{R"(a{"x":[1,"</"]})", "b{}", "c{}"}));
  EXPECT_EQ(p.content, "Let me check.");
  // The last call unclosed (the model ended its turn instead of writing </tool_call>).
  p = parse_tool_calls(S, "<tool_call>\n{\"name\": \"a\", \"arguments\": {\"k\": \"v\"}}\n");
  EXPECT_EQ(calls_of(p), V{R"(a{"k":"v"})"});
  // Malformed or partial: plain content.
  expect_plain(S, "no calls here");
  expect_plain(S, "");
  expect_plain(S, "<tool_call>\n{\"name\": \"get_we");                               // cut off (max_tokens)
  expect_plain(S, "<tool_call>{\"name\": \"a\", \"arguments\": {\"k\": }}</tool_call>");  // bad JSON
  expect_plain(S, "<tool_call>{\"arguments\": {}}</tool_call>");                          // no name
  expect_plain(S, "<tool_call>{\"name\": \"\", \"arguments\": {}}</tool_call>");          // empty name
  expect_plain(S, "<tool_call>{\"name\": \"a\", \"arguments\": \"x=1\"}</tool_call>");    // arguments not an object
  expect_plain(S, "<tool_call>[1, 2]</tool_call>");
  expect_plain(S, "<tool_call>{\"name\": \"a\"}</tool_call><tool_call>oops</tool_call>");  // one bad call: all plain
}

TEST(ToolCalls, Llama3Json) {
  const auto S = ToolCallSyntax::llama3_json;
  ParsedReply p = parse_tool_calls(S, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}");
  EXPECT_EQ(calls_of(p), V{R"(get_weather{"city":"Paris"})"});
  EXPECT_EQ(p.content, "");
  p = parse_tool_calls(S, " <|python_tag|>{\"name\": \"a\", \"parameters\": {\"s\": \"x; y\"}}; {\"name\": \"b\", \"arguments\": {}}\n");
  EXPECT_EQ(calls_of(p), (V{R"(a{"s":"x; y"})", "b{}"}));
  expect_plain(S, "The weather is {\"name\": \"a\", \"parameters\": {}}");  // text first: an answer, not a call
  expect_plain(S, "{\"name\": \"a\", \"parameters\": {\"x\": 1}");          // cut off
  expect_plain(S, "{\"city\": \"Paris\"}");                                  // JSON but no name
  expect_plain(S, "{\"name\": \"a\", \"parameters\": []}");
  expect_plain(S, "{\"name\": \"a\", \"parameters\": {}};");                 // a dangling separator
  expect_plain(S, "{}");
}

TEST(ToolCalls, Mistral) {
  const auto S = ToolCallSyntax::mistral;
  ParsedReply p = parse_tool_calls(S, "Sure. [TOOL_CALLS][{\"name\": \"a\", \"arguments\": {\"n\": 1}}, {\"name\": \"b\", \"arguments\": {}}]");
  EXPECT_EQ(calls_of(p), (V{R"(a{"n":1})", "b{}"}));
  EXPECT_EQ(p.content, "Sure.");
  // v11 tokenizers: name[ARGS]{...} after each [TOOL_CALLS].
  p = parse_tool_calls(S, "Sure.[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}[TOOL_CALLS]b[ARGS]{}");
  EXPECT_EQ(calls_of(p), (V{R"(get_weather{"city":"Paris"})", "b{}"}));
  EXPECT_EQ(p.content, "Sure.");
  expect_plain(S, "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Par");     // cut off
  expect_plain(S, "[TOOL_CALLS]get_weather{\"city\": \"Paris\"}");      // no [ARGS]
  expect_plain(S, "[TOOL_CALLS][ARGS]{}");                                // no name
  expect_plain(S, "[TOOL_CALLS]a[ARGS]{}[TOOL_CALLS]b[ARGS][1]");         // one bad call: all plain
  expect_plain(S, "[TOOL_CALLS][{\"name\": \"a\", \"arguments\": {\"n\": 1}");
  expect_plain(S, "[TOOL_CALLS][]");
  expect_plain(S, "[TOOL_CALLS]{\"name\": \"a\"}");
  expect_plain(S, "no calls");
}

TEST(ToolCalls, NoSyntaxReadsNothing) {
  expect_plain(ToolCallSyntax::none, "<tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call>");
}

TEST(ToolCalls, SyntaxChosenFromTheTemplateSource) {
  auto syntax_of = [](const std::string& file) {
    std::ifstream in(mgtest::fixture_file("chat_templates/templates/" + file), std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    EXPECT_FALSE(s.str().empty()) << file;
    return std::string(tool_call_syntax_name(tool_call_syntax(s.str())));
  };
  EXPECT_EQ(syntax_of("qwen2.5.jinja"), "hermes");
  EXPECT_EQ(syntax_of("granite4.0.jinja"), "hermes");
  EXPECT_EQ(syntax_of("llama3.1.jinja"), "llama3_json");
  EXPECT_EQ(syntax_of("mistral-instruct.jinja"), "none");  // this older Mistral template has no tools
  EXPECT_EQ(syntax_of("gemma.jinja"), "none");
  EXPECT_EQ(syntax_of("zephyr.jinja"), "none");
  EXPECT_EQ(tool_call_syntax("{{ '[TOOL_CALLS]' }}"), ToolCallSyntax::mistral);
}

// The response the server builds from a reply with calls, and from one without.
TEST(ToolCalls, ResponseShapes) {
  const ResponseHeader h{"chatcmpl-42-7", 1, "m"};
  ChoiceResult with, without;
  ParsedReply p = parse_tool_calls(ToolCallSyntax::hermes,
                                   "<tool_call>{\"name\": \"f\", \"arguments\": {\"q\": \"é\"}}</tool_call>");
  with.text = p.content;
  with.tool_calls = p.calls;
  with.finish = magellano::generate::FinishReason::stop;
  without.text = "plain";
  without.finish = magellano::generate::FinishReason::stop;
  const json j = chat_completion_json(h, {with, without}, Usage{1, 1}, nullptr);
  const json& m = j["choices"][0]["message"];
  EXPECT_TRUE(m["content"].is_null());
  ASSERT_EQ(m["tool_calls"].size(), 1u);
  EXPECT_EQ(m["tool_calls"][0]["id"], "call_42-7_0_0");
  EXPECT_EQ(m["tool_calls"][0]["type"], "function");
  EXPECT_EQ(m["tool_calls"][0]["function"]["name"], "f");
  ASSERT_TRUE(m["tool_calls"][0]["function"]["arguments"].is_string());
  EXPECT_EQ(json::parse(m["tool_calls"][0]["function"]["arguments"].get<std::string>()), json({{"q", "é"}}));
  EXPECT_FALSE(m["tool_calls"][0].contains("index"));
  EXPECT_EQ(j["choices"][0]["finish_reason"], "tool_calls");
  EXPECT_EQ(j["choices"][1]["message"], json({{"role", "assistant"}, {"content", "plain"}}));
  EXPECT_EQ(j["choices"][1]["finish_reason"], "stop");
  // Streamed (held back to the end): text before the calls, the calls with their index, the finish.
  p = parse_tool_calls(ToolCallSyntax::hermes, "Checking.<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>");
  auto chunks = held_chat_chunks(h, 1, p, nullptr, magellano::generate::FinishReason::stop);
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[0]["choices"][0]["delta"], json({{"content", "Checking."}}));
  EXPECT_EQ(chunks[1]["choices"][0]["delta"],
            json({{"tool_calls", {{{"index", 0}, {"id", "call_42-7_1_0"}, {"type", "function"},
                                   {"function", {{"name", "f"}, {"arguments", "{}"}}}}}}}));
  EXPECT_EQ(chunks[1]["choices"][0]["index"], 1);
  EXPECT_TRUE(chunks[1]["choices"][0]["finish_reason"].is_null());
  EXPECT_EQ(chunks[2]["choices"][0]["delta"], json::object());
  EXPECT_EQ(chunks[2]["choices"][0]["finish_reason"], "tool_calls");
  // Calls only: no content chunk; no calls: the text and the model's finish reason.
  p = parse_tool_calls(ToolCallSyntax::hermes, "<tool_call>{\"name\": \"f\"}</tool_call>");
  EXPECT_EQ(held_chat_chunks(h, 0, p, nullptr, magellano::generate::FinishReason::length).size(), 2u);
  chunks = held_chat_chunks(h, 0, parse_tool_calls(ToolCallSyntax::hermes, "<tool_call>{oops"), nullptr,
                            magellano::generate::FinishReason::length);
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_EQ(chunks[0]["choices"][0]["delta"], json({{"content", "<tool_call>{oops"}}));
  EXPECT_EQ(chunks[1]["choices"][0]["finish_reason"], "length");
}

TEST(ToolCalls, ChatLogprobsShape) {
  const magellano::generate::TokenBytes bytes = [](int32_t id) { return id == 1 ? std::string("h\xc3\xa9") : std::string("x"); };
  TokenLogprob t{1, -0.5, {{1, -0.5}, {2, -1.25}}};
  const json j = chat_logprobs_json({t}, bytes);
  EXPECT_TRUE(j["refusal"].is_null());
  ASSERT_EQ(j["content"].size(), 1u);
  const json& e = j["content"][0];
  EXPECT_EQ(e["token"], "h\xc3\xa9");
  EXPECT_EQ(e["logprob"], -0.5);
  EXPECT_EQ(e["bytes"], json({104, 195, 169}));
  ASSERT_EQ(e["top_logprobs"].size(), 2u);
  EXPECT_EQ(e["top_logprobs"][1], json({{"token", "x"}, {"logprob", -1.25}, {"bytes", {120}}}));
  ChoiceResult c;
  c.has_logprobs = true;
  c.logprobs = {t};
  EXPECT_EQ(chat_completion_json(ResponseHeader{"chatcmpl-1", 1, "m"}, {c}, Usage{}, bytes)["choices"][0]["logprobs"], j);
}
