// `magellano bench ssd` as a real process at tiny sizes: its results (forward and forward +
// backward in GFLOP/s and GB/s, the host loop), the FLOP count it reports against
// ops::ssd_scan_work, and bad options. The peaks are measured at tiny sizes so this stays fast.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "cli.hpp"
#include "magellano/ops/ssd.hpp"

namespace {

// `bench ssd ARGS` with tiny peaks.
mgtest::CliRun run_ssd(std::vector<std::string> args) {
  args.insert(args.begin(), {"bench", "ssd"});
  for (const char* a : {"--peak-size", "64", "--peak-repeats", "1", "--copy-mib", "1", "--repeats", "1"})
    args.push_back(a);
  return mgtest::run_cli(args);
}

std::vector<nlohmann::json> run_json(std::vector<std::string> args) {
  args.push_back("--json");
  const auto r = run_ssd(args);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::vector<nlohmann::json> out;
  std::istringstream lines(r.output);
  for (std::string line; std::getline(lines, line);)
    if (!line.empty() && line[0] == '{') out.push_back(nlohmann::json::parse(line));
  return out;
}

}  // namespace

TEST(SsdBench, ForwardBackwardBytesAndHostLoop) {
  MG_REQUIRE_CLI();
  const auto r = run_json({"--b", "2", "--l", "40", "--h", "4", "--p", "8", "--g", "2", "--n", "16",
                           "--chunk", "16", "--mapping", "item"});
  ASSERT_EQ(r.size(), 5u);
  const char* names[] = {"ssd_fwd", "ssd_fwd_bytes", "ssd_fwd_bwd", "ssd_fwd_bwd_bytes", "ssd_fwd"};
  for (size_t i = 0; i < r.size(); ++i) {
    EXPECT_EQ(r[i]["name"], names[i]);
    EXPECT_GT(r[i].value(i % 2 ? "gbps" : "gflops", 0.0), 0.0) << r[i].dump();
  }
  EXPECT_EQ(r[4]["device_type"], "host");
  EXPECT_EQ(r[0]["sizes"]["chunk"], 16);
  const auto w = magellano::ops::ssd_scan_work(2, 40, 4, 8, 2, 16, 16);
  EXPECT_DOUBLE_EQ(r[0]["extra"]["flops"].get<double>(), w.fwd_flops);
  EXPECT_DOUBLE_EQ(r[3]["extra"]["min_bytes"].get<double>(), w.fwd_bytes + w.bwd_bytes);
  EXPECT_GT(r[0]["extra"]["speedup_vs_host_loop"].get<double>(), 0.0);
  EXPECT_EQ(run_json({"--b", "1", "--l", "8", "--h", "2", "--p", "4", "--n", "4", "--host", "0",
                      "--mapping", "group"}).size(), 4u);
}

TEST(SsdBench, BadOptionsAreOneClearLine) {
  MG_REQUIRE_CLI();
  auto r = run_ssd({"--h", "6", "--g", "4"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("4 groups must divide --h 6"), std::string::npos) << r.output;
  r = run_ssd({"--mapping", "diagonal"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("--mapping: unknown value 'diagonal'"), std::string::npos) << r.output;
}
