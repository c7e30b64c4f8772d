// `magellano bench attention` as a real process at tiny sizes: forward and forward + backward per
// length in GFLOP/s, the FLOP count against ops::attention_work, and bad options. The peaks are
// measured at tiny sizes so this stays fast.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "cli.hpp"
#include "magellano/ops/attention.hpp"

namespace {

mgtest::CliRun run_attention(std::vector<std::string> args) {
  args.insert(args.begin(), {"bench", "attention"});
  for (const char* a : {"--peak-size", "64", "--peak-repeats", "1", "--copy-mib", "1", "--repeats", "1"})
    args.push_back(a);
  return mgtest::run_cli(args);
}

std::vector<nlohmann::json> run_json(std::vector<std::string> args) {
  args.push_back("--json");
  const auto r = run_attention(args);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::vector<nlohmann::json> out;
  std::istringstream lines(r.output);
  for (std::string line; std::getline(lines, line);)
    if (!line.empty() && line[0] == '{') out.push_back(nlohmann::json::parse(line));
  return out;
}

}  // namespace

TEST(AttentionBench, ForwardAndBackwardPerLength) {
  MG_REQUIRE_CLI();
  const auto r = run_json({"--b", "1", "--l", "16,40", "--h", "4", "--kv", "2", "--d", "32"});
  ASSERT_EQ(r.size(), 4u);
  const char* names[] = {"attention_fwd", "attention_fwd_bwd", "attention_fwd", "attention_fwd_bwd"};
  for (size_t i = 0; i < r.size(); ++i) {
    EXPECT_EQ(r[i]["name"], names[i]);
    EXPECT_GT(r[i].value("gflops", 0.0), 0.0) << r[i].dump();
    EXPECT_GT(r[i].value("pct_of_peak", 0.0), 0.0) << r[i].dump();
  }
  EXPECT_EQ(r[2]["sizes"]["L"], 40);
  const auto w = magellano::ops::attention_work(1, 40, 4, 2, 32, true);
  EXPECT_DOUBLE_EQ(r[2]["extra"]["flops"].get<double>(), w.fwd_flops);
  EXPECT_DOUBLE_EQ(r[3]["extra"]["flops"].get<double>(), w.fwd_flops + w.bwd_flops);
  EXPECT_DOUBLE_EQ(w.bwd_flops, 2.5 * w.fwd_flops);
  EXPECT_DOUBLE_EQ(w.fwd_flops, 4.0 * 4 * 40 * 40 * 32 / 2);
  EXPECT_EQ(run_json({"--b", "1", "--l", "8", "--h", "2", "--kv", "1", "--d", "16", "--causal", "0",
                      "--mapping", "group"}).size(), 2u);
}

TEST(AttentionBench, BadOptionsAreOneClearLine) {
  MG_REQUIRE_CLI();
  auto r = run_attention({"--h", "6", "--kv", "4"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("4 kv heads must divide --h 6"), std::string::npos) << r.output;
  r = run_attention({"--l", "512,x"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("--l: 'x' is not a length"), std::string::npos) << r.output;
  r = run_attention({"--mapping", "diagonal"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("--mapping: unknown value 'diagonal'"), std::string::npos) << r.output;
}
