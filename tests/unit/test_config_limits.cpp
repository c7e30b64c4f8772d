// Untrusted configs: every size has a maximum (configs/README.md) so nothing is truncated to int
// or wraps after validation, a model whose totals would overflow int64 is refused, and deep JSON,
// huge keys and values, repeated keys and deep layer patterns are one short line, quickly.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <limits>
#include <regex>

#include "error_text.hpp"
#include "magellano/runtime/error.hpp"
#include "magellano/train/config.hpp"
#include "magellano/train/model_size.hpp"
#include "project_files.hpp"
#include "temp_dir.hpp"

using mgtest::error_of;
using mgtest::has;
using namespace magellano;
using namespace magellano::train;
using nlohmann::json;

namespace {

// A small valid model the cases change one key of.
const char* kSmall = R"({"model": {"vocab_size": 512, "dim": 16, "layers": "ME", "d_state": 4,
                                   "moe": {"experts": 2, "top_k": 1, "hidden": 32}},
                         "train": {"steps": 10, "batch_size": 2, "seq_len": 16, "warmup_steps": 0}})";

// load_config of kSmall with `sets`; the message of its Error, or "(no error)".
std::string load_error(const std::vector<std::string>& sets) {
  mgtest::TempDir dir;
  std::ofstream(dir / "c.json") << kSmall;
  return error_of([&] { load_config((dir / "c.json").string(), sets); });
}

void expect_one_short_line(const std::string& msg, size_t max = 400) {
  EXPECT_NE(msg, "(no error)");
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg.substr(0, 300);
  EXPECT_LT(msg.size(), max) << msg.substr(0, 300);
}

std::string deep(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

}  // namespace

// Every integer key whose range configs/README.md states as "int in [lo, hi]": hi loads, hi + 1
// is refused naming the key (the caps keep every size in int range: scan_chunk, experts and top_k
// reach the device as int32).
TEST(ConfigLimits, SizesHaveTheMaximaTheReadmeStates) {
  std::ifstream in(mgtest::project_file("configs") / "README.md");
  ASSERT_TRUE(in) << "configs/README.md is missing";
  const std::regex row(R"(^\|\s*`([a-z_.]+)`\s*\|[^|]*int in \[(-?[0-9]+), ([0-9]+)\])");
  int checked = 0;
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (!std::regex_search(line, m, row)) continue;
    const std::string key = m[1];
    const int64_t hi = std::stoll(m[3]);
    SCOPED_TRACE(key);
    EXPECT_EQ(load_error({key + "=" + std::to_string(hi)}), "(no error)");
    const std::string msg = load_error({key + "=" + std::to_string(hi + 1)});
    EXPECT_TRUE(has(msg, "config: '" + key + "' must be")) << msg;
    EXPECT_TRUE(has(msg, std::to_string(hi))) << msg;
    ++checked;
  }
  EXPECT_GE(checked, 15) << "the README's size column changed form";
  EXPECT_EQ(load_error({"model.moe.experts=4096", "model.moe.top_k=4096"}), "(no error)");
  EXPECT_TRUE(has(load_error({"model.dim=65537"}),
                  "config: 'model.dim' must be <= 65536 (the largest Magellano supports), got 65537."));
  // The low side keeps its message.
  EXPECT_TRUE(has(load_error({"model.dim=0"}), "'model.dim' must be >= 1, got 0."));
}

// Values that used to pass validation and then be truncated to int (scan_chunk 2^31 became a
// negative chunk) or wrap.
TEST(ConfigLimits, ValuesBeyondIntAreRefusedNotTruncated) {
  EXPECT_TRUE(has(load_error({"model.scan_chunk=2147483648"}), "'model.scan_chunk' must be <= 16777216"));
  EXPECT_TRUE(has(load_error({"model.moe.experts=4294967298"}), "'model.moe.experts' must be <= 4096"));
  EXPECT_TRUE(has(load_error({"model.vocab_size=-1"}), "'model.vocab_size' must be in [2, 2147483647], got -1"));
  EXPECT_TRUE(has(load_error({"model.vocab_size=4294967295"}), "'model.vocab_size' must be in [2, 2147483647]"));
  EXPECT_TRUE(has(load_error({"model.dim=9223372036854775807"}), "'model.dim' must be <= 65536"));
  EXPECT_TRUE(has(load_error({"model.dim=18446744073709551615"}), "'model.dim' must be an integer"));
  EXPECT_TRUE(has(load_error({"train.gradient_checkpointing=2147483648"}), "an integer in [0, 2147483647]"));
  EXPECT_TRUE(has(load_error({"train.gradient_checkpointing=9223372036854775807"}), "an integer in [0, 2147483647]"));
  EXPECT_TRUE(has(load_error({"train.lr=1e39"}), "'train.lr' must be <= 3.40282e+38"));
}

// Each size fits its maximum, but together they could overflow the parameter count or the memory
// estimate (info printed negative totals with exit 0): such a model is refused, and the counts
// themselves throw instead of wrapping.
TEST(ConfigLimits, ModelsTooLargeToCountAreRefused) {
  const std::string msg = load_error({"model.vocab_size=2147483647", "model.dim=65536", "train.batch_size=1048576",
                                      "train.seq_len=16777216"});
  EXPECT_TRUE(has(msg, "config: the model's size does not fit in 64 bits")) << msg;
  expect_one_short_line(msg);
  ModelConfig m = Config::defaults().model;
  m.dim = int64_t(1) << 40;  // not through the schema
  EXPECT_TRUE(has(error_of([&] { count_params(m); }), "does not fit in 64 bits"));
  m = Config::defaults().model;
  EXPECT_TRUE(has(error_of([&] { estimate_memory(m, int64_t(1) << 40, int64_t(1) << 30); }), "does not fit in 64 bits"));
  // The largest sizes of a realistic model still count exactly.
  const Config big = Config::from_json(json::parse(R"({"model": {"vocab_size": 2147483647, "dim": 65536},
                                                        "train": {"batch_size": 1, "seq_len": 1024}})"));
  EXPECT_GT(count_params(big).total, int64_t(2147483647) * 65536);
  EXPECT_GT(estimate_memory(big).total, 0);
}

// A config value 150,000 arrays deep used to crash (the copy in from_json recursed); in a file or
// a --set value it is one line now.
TEST(ConfigLimits, DeepJsonIsOneLine) {
  mgtest::TempDir dir;
  std::ofstream(dir / "deep.json") << "{\"device\": " << deep(150000) << "}";
  std::string msg = error_of([&] { load_config((dir / "deep.json").string()); });
  EXPECT_TRUE(has(msg, "config: '" + (dir / "deep.json").string() + "' nests arrays and objects more than 64 deep")) << msg;
  expect_one_short_line(msg);
  for (const std::string& set : {"device=" + deep(30000), "model={\"dim\": " + deep(30000) + "}",
                                 "train.steps=" + deep(65)}) {
    msg = load_error({set});
    EXPECT_TRUE(has(msg, "more than 64 deep")) << msg.substr(0, 300);
    expect_one_short_line(msg);
  }
  EXPECT_TRUE(has(load_error({"device=" + deep(3)}), "'device' must be a string, got a list"));
}

// A 1 MB unknown key took 15 s in the "did you mean" search and was echoed whole.
TEST(ConfigLimits, HugeKeysAndValuesAreFastAndCutShort) {
  mgtest::TempDir dir;
  const std::string key(1000000, 'k');
  std::ofstream(dir / "key.json") << "{\"model\": {\"" << key << "\": 1}}";
  const auto t0 = std::chrono::steady_clock::now();
  std::string msg = error_of([&] { load_config((dir / "key.json").string()); });
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 2.0);
  EXPECT_TRUE(has(msg, "config: unknown key 'model.kkkk")) << msg.substr(0, 300);
  EXPECT_TRUE(has(msg, "... (1000006 bytes)'")) << msg.substr(0, 300);
  expect_one_short_line(msg);
  msg = load_error({"model." + key + "=1"});
  EXPECT_TRUE(has(msg, "unknown key")) << msg.substr(0, 300);
  expect_one_short_line(msg, 600);  // the key, and the --set it came from, each cut
  std::ofstream(dir / "value.json") << "{\"train\": {\"steps\": \"" << std::string(1000000, 'v') << "\"}}";
  msg = error_of([&] { load_config((dir / "value.json").string()); });
  EXPECT_TRUE(has(msg, "'train.steps' must be an integer, got a string (\"vvv")) << msg.substr(0, 300);
  expect_one_short_line(msg);
  msg = load_error({"model.layers=" + std::string(1000000, 'X')});
  EXPECT_TRUE(has(msg, "is not a valid layer pattern")) << msg.substr(0, 300);
  expect_one_short_line(msg, 600);
  // Short typos still get their suggestion.
  EXPECT_TRUE(has(load_error({"train.stpes=3"}), "(did you mean 'train.steps'?)"));
}

TEST(ConfigLimits, RepeatedKeysAndControlCharactersAreOneLine) {
  mgtest::TempDir dir;
  std::ofstream(dir / "twice.json") << R"({"train": {"steps": 5}, "train": {"steps": 6}})";
  EXPECT_TRUE(has(error_of([&] { load_config((dir / "twice.json").string()); }),
                  "has the key \"train\" twice in one object"));
  std::string msg = load_error({"mo\ndel.x=1"});
  EXPECT_TRUE(has(msg, "unknown key 'mo\\ndel.x'")) << msg;
  expect_one_short_line(msg);
  msg = load_error({"model.layers=M\001E"});
  EXPECT_TRUE(has(msg, "unexpected '\\x01'")) << msg;
  expect_one_short_line(msg);
}

// The pattern parser recursed once per '(' (a pattern 35,000 deep overflowed the stack); groups
// now nest at most 16 deep, and the expansion is bounded before it is built.
TEST(ConfigLimits, LayerPatternsAreBounded) {
  const auto nested = [](int depth) { return std::string(depth, '(') + "ME" + std::string(depth, ')'); };
  EXPECT_EQ(parse_layer_pattern(nested(16)).size(), 2u);
  std::string msg = error_of([&] { parse_layer_pattern(nested(17), "'model.layers'"); });
  EXPECT_TRUE(has(msg, "groups nested more than 16 deep at position 17")) << msg;
  msg = error_of([&] { parse_layer_pattern(nested(40000), "'model.layers'"); });
  EXPECT_TRUE(has(msg, "groups nested more than 16 deep")) << msg.substr(0, 300);
  expect_one_short_line(msg);
  EXPECT_TRUE(has(error_of([] { parse_layer_pattern("(M)x1000000000"); }), "a repeat count above 9999"));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(has(error_of([] { parse_layer_pattern("((((((M)x9999)x9999)x9999)x9999)x9999)x9999"); }),
                  "more than 100000 layers"));
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 1.0);
  EXPECT_EQ(parse_layer_pattern("(M)x9999E").size(), 10000u);
  EXPECT_TRUE(has(error_of([] { parse_layer_list(json(std::vector<std::string>(100001, "M"))); }),
                  "has 100001 layers, more than 100000"));
  EXPECT_TRUE(has(error_of([] { parse_layer_list(json::array({json::array({1})})); }), "[0] must be \"mamba\", \"mamba2\", \"attention\", \"moe\" or \"mlp\", got [1]"));
}
