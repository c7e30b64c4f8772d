// The one JSON entry point for user files (runtime/json_parse.hpp): nesting depth and repeated
// keys are refused with one line naming the input, syntax errors keep the parser's position but
// never quote a huge token whole, and values echoed into errors are cut short (excerpt()).
#include <gtest/gtest.h>

#include <string>

#include "error_text.hpp"
#include "magellano/runtime/error.hpp"
#include "magellano/runtime/json_parse.hpp"

using magellano::excerpt;
using magellano::json_excerpt;
using magellano::kMaxJsonDepth;
using magellano::parse_json;
using mgtest::error_of;
using mgtest::has;
using nlohmann::json;

namespace {

std::string nested_arrays(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

void expect_one_short_line(const std::string& msg) {
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  EXPECT_LT(msg.size(), 600u) << msg.substr(0, 300);
}

}  // namespace

TEST(JsonParse, ParsesOrdinaryDocuments) {
  EXPECT_EQ(parse_json(R"({"a": [1, 2, {"b": null}], "c": "d"})", "x"),
            json({{"a", {1, 2, {{"b", nullptr}}}}, {"c", "d"}}));
  EXPECT_EQ(parse_json("// note\n{\"a\": 1 /* one */}", "x", "", {.comments = true}), json({{"a", 1}}));
  EXPECT_TRUE(has(error_of([] { parse_json("// note\n{}", "config x"); }), "config x is not valid JSON"));
}

// Depth 64 (the limit) parses; 65 and a 150,000-deep document (which used to overflow the stack
// when copied or printed) are one line, before any deep value exists.
TEST(JsonParse, NestingDeeperThanTheLimitIsRefused) {
  EXPECT_NO_THROW(parse_json(nested_arrays(kMaxJsonDepth), "x"));
  EXPECT_NO_THROW(parse_json("{\"a\":" + nested_arrays(kMaxJsonDepth - 1) + "}", "x"));
  for (const std::string& text : {nested_arrays(kMaxJsonDepth + 1), "{\"a\":" + nested_arrays(kMaxJsonDepth) + "}",
                                  nested_arrays(150000), repeat("{\"a\":", 150000)}) {
    const std::string msg = error_of([&] { parse_json(text, "trainer state t.json", " Fix it."); });
    EXPECT_TRUE(has(msg, "trainer state t.json nests arrays and objects more than 64 deep")) << msg;
    EXPECT_TRUE(has(msg, "Fix it.")) << msg;
    expect_one_short_line(msg);
  }
  EXPECT_NO_THROW(parse_json(nested_arrays(5), "x", "", {.max_depth = 5}));
  EXPECT_TRUE(has(error_of([] { parse_json(nested_arrays(6), "x", "", {.max_depth = 5}); }), "more than 5 deep"));
}

// nlohmann keeps the last of two equal keys; we refuse them at any depth.
TEST(JsonParse, RepeatedKeysAreRefused) {
  EXPECT_TRUE(has(error_of([] { parse_json(R"({"a": 1, "a": 2})", "f.json"); }),
                  "f.json has the key \"a\" twice in one object"));
  EXPECT_TRUE(has(error_of([] { parse_json(R"({"x": [{"b": 1, "c": 2, "b": 3}]})", "f.json"); }),
                  "has the key \"b\" twice"));
  EXPECT_NO_THROW(parse_json(R"({"a": {"a": {"a": 1}}, "b": [{"a": 1}, {"a": 2}]})", "f.json"));
  const std::string msg = error_of([] {
    const std::string k(100000, 'k');
    parse_json("{\"" + k + "\": 1, \"" + k + "\": 2}", "f.json");
  });
  EXPECT_TRUE(has(msg, "... (100000 bytes)")) << msg.substr(0, 300);
  expect_one_short_line(msg);
}

TEST(JsonParse, SyntaxErrorsKeepThePositionAndCutTheToken) {
  std::string msg = error_of([] { parse_json("{\n  \"step\": 12,\n  oops\n}", "JSON file a.json", " Fix it."); });
  EXPECT_TRUE(has(msg, "JSON file a.json is not valid JSON: parse error at line 3, column")) << msg;
  EXPECT_FALSE(has(msg, "[json.exception")) << msg;
  EXPECT_TRUE(has(msg, ". Fix it.")) << msg;
  // An unterminated 1 MB string: the parser quotes all of it as "last read".
  msg = error_of([] { parse_json("{\"a\": \"" + std::string(1000000, 'v'), "f.json"); });
  EXPECT_TRUE(has(msg, "is not valid JSON")) << msg.substr(0, 300);
  expect_one_short_line(msg);
  // A number too large for a double is the library's out_of_range, not a parse_error.
  msg = error_of([] { parse_json(R"({"lr": 1e400})", "f.json"); });
  EXPECT_TRUE(has(msg, "f.json is not valid JSON")) << msg;
  EXPECT_TRUE(has(error_of([] { parse_json("", "f.json"); }), "f.json is not valid JSON"));
  EXPECT_TRUE(has(error_of([] { parse_json("{} x", "f.json"); }), "f.json is not valid JSON"));
}

TEST(JsonParse, ExcerptsKeepErrorsToOneShortLine) {
  EXPECT_EQ(excerpt("short"), "short");
  EXPECT_EQ(excerpt(std::string(80, 'a')), std::string(80, 'a'));
  EXPECT_EQ(excerpt(std::string(81, 'a')), std::string(80, 'a') + "... (81 bytes)");
  EXPECT_EQ(excerpt("a\nb\r\tc\x01\x7f"), "a\\nb\\r\\tc\\x01\\x7f");
  // Never cut inside a UTF-8 character: "é" is 2 bytes, so 80 bytes would split the 40th.
  std::string e;
  for (int i = 0; i < 50; ++i) e += "\xc3\xa9";
  EXPECT_EQ(excerpt(e, 79), e.substr(0, 78) + "... (100 bytes)");
  EXPECT_EQ(json_excerpt(json("x")), "\"x\"");
  EXPECT_EQ(json_excerpt(json(std::string(200, 'y'))).size(), std::string(80, 'y').size() + 15);
  // Invalid UTF-8 (a --set value is a raw string) is replaced, not thrown about.
  EXPECT_NO_THROW(json_excerpt(json(std::string("\xff\xfe"))));
}
