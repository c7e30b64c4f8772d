// The serve layer's host-side pieces without a server: a completions body into a typed request
// (defaults, every accepted form, the limits at their edges, each refusal naming its parameter),
// OpenAI's response shapes, and the Prometheus text of the metrics (cumulative histogram buckets).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "magellano/serve/chat_request.hpp"
#include "magellano/serve/metrics.hpp"
#include "magellano/serve/openai_json.hpp"
#include "magellano/serve/request.hpp"
#include "magellano/serve/sse.hpp"

using namespace magellano::serve;
using nlohmann::json;

namespace {

ServeLimits limits() {
  ServeLimits l;
  l.max_tokens = 100;
  l.max_n = 3;
  return l;
}

CompletionRequest parse(const std::string& body) { return parse_completion_request(parse_body(body), "m", limits()); }

// The ApiError a body gives (status 0 when it parses).
ApiError refusal(const std::string& body) {
  try {
    parse(body);
  } catch (const ApiError& e) {
    return e;
  }
  return ApiError(0, "parsed");
}

}  // namespace

TEST(ServeRequest, DefaultsAndAcceptedForms) {
  const auto r = parse(R"({"prompt": "hi"})");
  ASSERT_TRUE(r.prompt_text.has_value());
  EXPECT_EQ(*r.prompt_text, "hi");
  EXPECT_EQ(r.max_tokens, 16);
  EXPECT_EQ(r.sampling.temperature, 1.0f);
  EXPECT_EQ(r.sampling.top_p, 1.0f);
  EXPECT_EQ(r.sampling.top_k, 0);
  EXPECT_EQ(r.sampling.repetition_penalty, 1.0f);
  EXPECT_FALSE(r.seed_given);
  EXPECT_EQ(r.n, 1);
  EXPECT_FALSE(r.stream || r.echo || r.logprobs.has_value());

  const auto ids = parse(R"({"model": "m", "prompt": [[3, 0, 7]], "max_tokens": 100, "temperature": 0,
                            "top_p": 0.5, "top_k": -1, "n": 3, "stop": "x", "seed": 42, "logprobs": 5,
                            "stream": true, "stream_options": {"include_usage": true}, "repetition_penalty": 1.3,
                            "presence_penalty": 0, "frequency_penalty": 0.0, "logit_bias": {}, "best_of": 3,
                            "user": "u", "suffix": null})");
  EXPECT_EQ(ids.prompt_ids, (std::vector<int32_t>{3, 0, 7}));
  EXPECT_EQ(ids.max_tokens, 100);
  EXPECT_EQ(ids.sampling.temperature, 0.0f);
  EXPECT_EQ(ids.sampling.top_k, 0);  // -1 (vLLM's "off") is 0 here
  EXPECT_EQ(ids.n, 3);
  EXPECT_EQ(ids.stop, std::vector<std::string>{"x"});
  EXPECT_TRUE(ids.seed_given);
  EXPECT_EQ(ids.sampling.seed, 42u);
  EXPECT_EQ(ids.logprobs, 5);
  EXPECT_TRUE(ids.stream && ids.include_usage);
  EXPECT_FLOAT_EQ(ids.sampling.repetition_penalty, 1.3f);
  EXPECT_EQ(parse(R"({"prompt": ["one"]})").prompt_text, "one");
}

TEST(ServeRequest, LimitsAtTheirEdges) {
  EXPECT_EQ(parse(R"({"prompt": "a", "max_tokens": 1})").max_tokens, 1);
  EXPECT_EQ(parse(R"({"prompt": "a", "max_tokens": 100})").max_tokens, 100);
  for (const char* bad : {R"({"prompt": "a", "max_tokens": 0})", R"({"prompt": "a", "max_tokens": 101})",
                          R"({"prompt": "a", "max_tokens": -1})", R"({"prompt": "a", "max_tokens": 1e3})",
                          R"({"prompt": "a", "max_tokens": 18446744073709551615})"}) {
    const ApiError e = refusal(bad);
    EXPECT_EQ(e.status, 400) << bad;
    EXPECT_EQ(e.param, "max_tokens") << bad;
  }
  EXPECT_EQ(refusal(R"({"prompt": "a", "n": 4})").param, "n");
  EXPECT_EQ(refusal(R"({"prompt": "a", "temperature": 2.01})").param, "temperature");
  EXPECT_EQ(parse(R"({"prompt": "a", "temperature": 2})").sampling.temperature, 2.0f);
  EXPECT_EQ(refusal(R"({"prompt": "a", "top_p": 1.5})").param, "top_p");
  EXPECT_EQ(refusal(R"({"prompt": "a", "top_k": -2})").param, "top_k");
  EXPECT_EQ(refusal(R"({"prompt": "a", "repetition_penalty": 0})").param, "repetition_penalty");
  EXPECT_EQ(refusal(R"({"prompt": "a", "logprobs": 6})").param, "logprobs");
  EXPECT_EQ(refusal(R"({"prompt": "a", "seed": -1})").param, "seed");
  EXPECT_EQ(refusal(R"({"prompt": [1, 2147483648]})").param, "prompt");
}

TEST(ServeRequest, RefusalsNameTheirParameter) {
  struct Case {
    const char* body;
    int status;
    const char* param;
    const char* code;
  };
  const Case cases[] = {
      {"{", 400, "", "invalid_json"},
      {"3", 400, "", "invalid_json"},
      {R"({"prompt": [1, 2222222222e2224444444]})", 400, "", "invalid_json"},  // a number too large (fuzz)
      {R"({"prompt": "a", "model": "other"})", 404, "model", "model_not_found"},
      {R"({"prompt": "a", "top_q": 1})", 400, "top_q", ""},
      {R"({"prompt": "a", "presence_penalty": 0.1})", 400, "presence_penalty", ""},
      {R"({"prompt": "a", "presence_penalty": 3})", 400, "presence_penalty", ""},
      {R"({"prompt": "a", "logit_bias": {"1": 2}})", 400, "logit_bias", ""},
      {R"({"prompt": "a", "suffix": "z"})", 400, "suffix", ""},
      {R"({"prompt": "a", "best_of": 2})", 400, "best_of", ""},
      {R"({"prompt": "a", "echo": true, "logprobs": 0})", 400, "logprobs", ""},
      {R"({"prompt": "a", "stop": ""})", 400, "stop", ""},
      {R"({"prompt": "a", "stop": 5})", 400, "stop", ""},
      {R"({"prompt": "a", "stream": "yes"})", 400, "stream", ""},
      {R"({"prompt": "a", "stream_options": {"include_usage": true}})", 400, "stream_options", ""},
      {R"({"prompt": "a", "stream": true, "stream_options": {"x": 1}})", 400, "stream_options", ""},
      {R"({"prompt": "a", "user": 1})", 400, "user", ""},
      {R"({"prompt": []})", 400, "prompt", ""},
      {R"({"prompt": [1.5]})", 400, "prompt", ""},
      {R"({"prompt": ["a", "b"]})", 400, "prompt", ""},
      {R"({"prompt": null})", 400, "prompt", ""},
  };
  for (const auto& c : cases) {
    const ApiError e = refusal(c.body);
    EXPECT_EQ(e.status, c.status) << c.body;
    EXPECT_EQ(e.param, c.param) << c.body;
    EXPECT_EQ(e.code, c.code) << c.body;
    const json j = e.to_json();
    EXPECT_EQ(j["error"]["message"], e.what());
    EXPECT_EQ(j["error"]["param"], *c.param ? json(c.param) : json(nullptr)) << c.body;
  }
}

TEST(ServeJson, ShapesOfResponsesAndChunks) {
  const ResponseHeader h{"cmpl-1", 1700000000, "m"};
  ChoiceResult c;
  c.text = "ab";
  c.finish = magellano::generate::FinishReason::eos;
  c.has_logprobs = true;
  c.logprobs.push_back({7, -0.5, {{7, -0.5}, {8, -1.5}}});
  c.logprobs.push_back({8, -2.0, {{9, -0.1}}});
  const magellano::generate::TokenBytes bytes = [](int32_t id) { return std::string(1, static_cast<char>('a' + id - 7)); };
  const json j = completion_json(h, {c}, Usage{3, 2}, bytes, 4);
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");  // end-of-text is "stop" in OpenAI's terms
  EXPECT_EQ(j["usage"]["total_tokens"], 5);
  const json& lp = j["choices"][0]["logprobs"];
  EXPECT_EQ(lp["tokens"], json({"a", "b"}));
  EXPECT_EQ(lp["text_offset"], json({4, 5}));  // after 4 echoed bytes
  EXPECT_EQ(lp["top_logprobs"][0]["b"], -1.5);
  const json chunk = chunk_json(h, 2, "x", nullptr, nullptr);
  EXPECT_TRUE(chunk["choices"][0]["finish_reason"].is_null());
  EXPECT_EQ(chunk["choices"][0]["index"], 2);
  EXPECT_EQ(sse_event(json{{"a", 1}}), "data: {\"a\":1}\n\n");
  EXPECT_EQ(dump(json("\xff")), "\"\xEF\xBF\xBD\"");  // invalid UTF-8 becomes U+FFFD
}

TEST(ServeMetrics, PrometheusText) {
  Metrics m;
  m.count_request("/v1/completions", 200);
  m.count_request("/v1/completions", 200);
  m.count_request("/v1/completions", 400);
  m.record_first_token(0.003);  // bucket 0.005
  m.record_first_token(0.2);    // bucket 0.25
  m.record_first_token(100);    // only +Inf
  m.record_step(4, 4);
  m.set_batch_size(3);
  const std::string t = m.render();
  auto has = [&](const std::string& line) { return t.find(line + "\n") != std::string::npos; };
  EXPECT_TRUE(has("magellano_requests_total{endpoint=\"/v1/completions\",status=\"200\"} 2")) << t;
  EXPECT_TRUE(has("magellano_requests_total{endpoint=\"/v1/completions\",status=\"400\"} 1"));
  EXPECT_TRUE(has("magellano_time_to_first_token_seconds_bucket{le=\"0.005\"} 1"));
  EXPECT_TRUE(has("magellano_time_to_first_token_seconds_bucket{le=\"0.1\"} 1"));
  EXPECT_TRUE(has("magellano_time_to_first_token_seconds_bucket{le=\"0.25\"} 2"));
  EXPECT_TRUE(has("magellano_time_to_first_token_seconds_bucket{le=\"30\"} 2"));
  EXPECT_TRUE(has("magellano_time_to_first_token_seconds_bucket{le=\"+Inf\"} 3"));
  EXPECT_TRUE(has("magellano_time_to_first_token_seconds_count 3"));
  EXPECT_TRUE(has("magellano_generated_tokens_total 4"));
  EXPECT_TRUE(has("magellano_batch_size 3"));
  EXPECT_TRUE(has("magellano_tokens_per_second 0.8"));  // 4 tokens over the 5 s window
  EXPECT_TRUE(has("# TYPE magellano_time_to_first_token_seconds histogram"));
}

TEST(ServeChatRequest, FieldsAndDefaults) {
  const ChatRequest c = parse_chat_request(
      R"({"messages": [{"role": "user", "content": "hi", "name": "x"}, {"role": "assistant", "content": null,
           "tool_calls": [{"function": {"name": "f", "arguments": {"z": 1, "a": 2}}}]}],
          "tools": [{"type": "function", "function": {"name": "f", "parameters": {"z": 1, "a": 2}}}],
          "max_completion_tokens": 7, "temperature": 0, "seed": 3, "stop": "\n", "logprobs": false,
          "response_format": {"type": "text"}, "tool_choice": "auto", "parallel_tool_calls": false})",
      "m", limits());
  EXPECT_EQ(c.params.max_tokens, 7);
  EXPECT_EQ(c.params.sampling.temperature, 0.0f);
  EXPECT_TRUE(c.params.seed_given);
  EXPECT_EQ(c.params.stop, std::vector<std::string>{"\n"});
  EXPECT_EQ(c.messages.size(), 2u);
  EXPECT_EQ(c.messages[0]["name"], "x");  // extra keys reach the template
  // Key order as sent (a template's tojson shows it): "z" before "a".
  EXPECT_EQ(c.tools.dump(), R"([{"type":"function","function":{"name":"f","parameters":{"z":1,"a":2}}}])");
  EXPECT_EQ(c.messages[1]["tool_calls"][0]["function"]["arguments"].dump(), R"({"z":1,"a":2})");
  EXPECT_TRUE(c.tool_calls);
  EXPECT_FALSE(c.params.logprobs);
  EXPECT_TRUE(parse_chat_request(R"({"messages": [{"role": "user", "content": "x"}]})", "m", limits()).tools.is_null());
  // tool_choice "none": the tools stay out of the prompt and the reply is not read for calls.
  const ChatRequest none = parse_chat_request(
      R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "f"}}],
          "tool_choice": "none"})", "m", limits());
  EXPECT_TRUE(none.tools.is_null());
  EXPECT_FALSE(none.tool_calls);
  // OpenAI's arguments string becomes the object the templates expect (key order kept); a string
  // that is not a JSON object stays a string; content may be left out beside tool_calls.
  const ChatRequest calls = parse_chat_request(
      R"({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [
           {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"z\": 1, \"a\": [2]}"}},
           {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "not json"}}]},
          {"role": "tool", "tool_call_id": "c1", "content": "3"}],
          "logprobs": true, "top_logprobs": 20})", "m", limits());
  EXPECT_EQ(calls.messages[1]["tool_calls"][0]["function"]["arguments"].dump(), R"({"z":1,"a":[2]})");
  EXPECT_EQ(calls.messages[1]["tool_calls"][1]["function"]["arguments"], "not json");
  EXPECT_EQ(calls.params.logprobs, 20);
  EXPECT_EQ(parse_chat_request(R"({"messages": [{"role": "user", "content": "x"}], "logprobs": true})", "m", limits())
                .params.logprobs, 0);
  EXPECT_EQ(parse_chat_request(R"({"messages": [{"role": "user", "content": "x"}]})", "m", limits()).params.max_tokens, 16);
}

TEST(ServeChatRequest, RefusalsNameTheField) {
  auto refusal_of = [](const std::string& body) {
    try {
      parse_chat_request(body, "m", limits());
    } catch (const ApiError& e) {
      return e;
    }
    return ApiError(0, "parsed");
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"messages": [{"role": "user", "content": "x"}], "prompt": "p"})", "prompt"},
      {R"({"messages": {"role": "user"}})", "messages"},
      {R"({"messages": [5]})", "messages[0]"},
      {R"({"messages": [{"role": "", "content": "x"}]})", "messages[0].role"},
      {R"({"messages": [{"role": "user", "content": "x"}, {"role": "user", "content": [{"type": "text", "text": 1}]}]})",
       "messages[1].content[0].text"},
      {R"({"messages": [{"role": "user", "content": [5]}]})", "messages[0].content[0]"},
      {R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})", "top_logprobs"},
      {R"({"messages": [{"role": "user", "content": "x"}], "logprobs": false, "top_logprobs": 0})", "top_logprobs"},
      {R"({"messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": 21})", "top_logprobs"},
      {R"({"messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": -1})", "top_logprobs"},
      {R"({"messages": [{"role": "user", "content": "x"}], "logprobs": "yes"})", "logprobs"},
      {R"({"messages": [{"role": "user", "content": "x"}], "logprobs": 1})", "logprobs"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tools": {}})", "tools"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "code_interpreter"}]})", "tools[0].type"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]})", "tools[0].function"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": 1}}]})",
       "tools[0].function.name"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "f", "parameters": "x"}}]})",
       "tools[0].function.parameters"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tool_choice": "auto"})", "tool_choice"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "always"})",
       "tool_choice"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "required"})",
       "tool_choice"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "f"}}],
           "tool_choice": {"type": "function", "function": {"name": "g"}}})", "tool_choice"},
      {R"({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": {}}]})", "messages[1].tool_calls"},
      {R"({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [{"id": "c"}]}]})",
       "messages[1].tool_calls[0].function"},
      {R"({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": 3}}]}]})",
       "messages[1].tool_calls[0].function.arguments"},
      {R"({"messages": [{"role": "user", "content": "x", "tool_calls": []}]})", "messages[0].tool_calls"},
      {R"({"messages": [{"role": "user", "content": "x"}, {"role": "assistant"}]})", "messages[1].content"},
      {R"({"messages": [{"role": "tool", "content": "x"}]})", "messages[0].tool_call_id"},
      {R"({"messages": [{"role": "user", "content": "x"}], "n": 4})", "n"},
      {R"({"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 101})", "max_completion_tokens"},
      {R"({"messages": [{"role": "user", "content": "x"}], "parallel_tool_calls": 1})", "parallel_tool_calls"},
  };
  for (const auto& [body, param] : cases) {
    const ApiError e = refusal_of(body);
    EXPECT_EQ(e.status, 400) << body;
    EXPECT_EQ(e.param, param) << body << ": " << e.what();
  }
  EXPECT_EQ(refusal_of(R"({"messages": [{"role": "user", "content": "x"}], "model": "other"})").status, 404);
  EXPECT_EQ(refusal_of("[1]").code, "invalid_json");
}

TEST(ServeChatRequest, ResponseShapes) {
  const ResponseHeader h{"chatcmpl-1", 7, "m"};
  ChoiceResult c;
  c.text = "hello";
  c.finish = magellano::generate::FinishReason::length;
  const json j = chat_completion_json(h, {c}, Usage{3, 2}, nullptr);
  EXPECT_EQ(j.dump(), R"({"choices":[{"finish_reason":"length","index":0,"logprobs":null,"message":{"content":"hello","role":"assistant"}}],"created":7,"id":"chatcmpl-1","model":"m","object":"chat.completion","usage":{"completion_tokens":2,"prompt_tokens":3,"total_tokens":5}})");
  const json k = chat_chunk_json(h, 1, {{"content", "x"}}, nullptr);
  EXPECT_EQ(k["object"], "chat.completion.chunk");
  EXPECT_EQ(k["choices"][0]["delta"]["content"], "x");
  EXPECT_TRUE(k["choices"][0]["finish_reason"].is_null());
  EXPECT_EQ(chat_chunk_json(h, 0, json::object(), "stop")["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(usage_chunk_json(h, Usage{1, 1}, "chat.completion.chunk")["object"], "chat.completion.chunk");
}
