// `magellano bench` as a real process: the list, a tiny run of every entry with --json (each
// line parsed and checked for the keys the suite promises), and the bad-input paths (unknown
// benchmark, unknown option, a value that is not a number or out of range). The peaks are
// measured at tiny sizes (--peak-size 64, 1 MiB copy) so the whole file stays fast on PoCL.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli.hpp"
#include "error_text.hpp"
#include "project_files.hpp"

using mgtest::has;
using mgtest::run_cli;

namespace {

const std::vector<std::string> kTinyPeaks = {"--peak-size", "64", "--peak-repeats", "1", "--copy-mib", "1",
                                             "--repeats", "1", "--json"};

// Runs `bench NAME args... --json` with tiny peaks; returns the JSON lines after checking the
// exit code and that every line is a result with the promised keys.
std::vector<nlohmann::json> run_json(const std::string& name, const std::vector<std::string>& args) {
  std::vector<std::string> all = {"bench", name};
  all.insert(all.end(), args.begin(), args.end());
  all.insert(all.end(), kTinyPeaks.begin(), kTinyPeaks.end());
  const auto r = run_cli(all);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::vector<nlohmann::json> out;
  std::istringstream lines(r.output);
  for (std::string line; std::getline(lines, line);) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const std::exception&) {
      ADD_FAILURE() << "not a JSON line: " << line;
      continue;
    }
    for (const char* key : {"name", "device", "device_type", "driver", "date", "sizes", "median_s", "repeats",
                            "pct_of_peak"})
      EXPECT_TRUE(j.contains(key)) << key << " missing in " << line;
    EXPECT_TRUE(j.contains("gflops") != j.contains("gbps")) << "exactly one rate expected: " << line;
    EXPECT_GT(j.value("median_s", 0.0), 0.0) << line;
    const double rate = j.contains("gflops") ? j["gflops"].get<double>() : j.value("gbps", 0.0);
    EXPECT_GT(rate, 0.0) << line;
    if (!j["pct_of_peak"].is_null()) EXPECT_GT(j["pct_of_peak"].get<double>(), 0.0) << line;
    out.push_back(j);
  }
  return out;
}

std::vector<std::string> names(const std::vector<nlohmann::json>& results) {
  std::vector<std::string> n;
  for (const auto& j : results) n.push_back(j["name"].get<std::string>() + (j["device_type"] == "host" ? "@host" : ""));
  return n;
}

}  // namespace

TEST(BenchCli, ListNamesEveryBenchmarkAndItsOptions) {
  MG_REQUIRE_CLI();
  const auto r = run_cli({"bench", "list"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* b : {"adamw", "copy", "gemm", "moe", "scan", "train-step", "tokenizer"})
    EXPECT_TRUE(has(r.output, std::string("  ") + b + " ")) << b << "\n" << r.output;
  EXPECT_TRUE(has(r.output, "[--iters ...]")) << r.output;
  const auto usage = run_cli({"bench"});
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_TRUE(has(usage.output, "usage: magellano bench NAME")) << usage.output;
}

TEST(BenchCli, CopyAndGemm) {
  MG_REQUIRE_CLI();
  auto r = run_json("copy", {"--mib", "1"});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0]["name"], "copy");
  EXPECT_EQ(r[0]["peak"]["kind"], "copy bandwidth");
  r = run_json("gemm", {"--size", "48"});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0]["sizes"]["n"], 48);
  EXPECT_EQ(r[0]["peak"]["size"], 64);
}

TEST(BenchCli, AdamwReportsFp32Fp16ClipAndTheHostLoop) {
  MG_REQUIRE_CLI();
  const auto r = run_json("adamw", {"--n", "64", "--iters", "2"});
  EXPECT_EQ(names(r), (std::vector<std::string>{"adamw_fp32", "adamw_fp16", "adamw_fp32_clip", "adamw_int8",
                                                "adamw_fp32_paged", "adamw_int8_paged", "adamw_fp32@host"}));
  for (const auto& j : r) {
    EXPECT_EQ(j["sizes"]["params"], 4096);
    EXPECT_EQ(j["sizes"]["iterations"], 2);
    EXPECT_TRUE(j.contains("gbps"));
  }
  EXPECT_EQ(r[1]["extra"]["bytes_per_param"], 22.0);
  EXPECT_EQ(r[6]["peak"]["kind"], "host memcpy bandwidth, 1 thread");
  EXPECT_NEAR(double(r[3]["extra"]["bytes_per_param"]), 16.0625, 1e-12);
}

TEST(BenchCli, ScanWithItsHostLoop) {
  MG_REQUIRE_CLI();
  const auto r = run_json("scan", {"--shapes", "2x16x32,1x8x16"});
  EXPECT_EQ(names(r), (std::vector<std::string>{"scan_fwd_bwd", "scan_fwd_bwd@host", "scan_fwd_bwd",
                                                "scan_fwd_bwd@host"}));
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0]["sizes"]["E"], 32);
  EXPECT_EQ(r[2]["sizes"]["L"], 8);
  EXPECT_EQ(run_json("scan", {"--shapes", "1x8x16", "--host", "0"}).size(), 1u);
}

TEST(BenchCli, MoeForwardAndBackward) {
  MG_REQUIRE_CLI();
  const auto r = run_json("moe", {"--tokens", "64", "--dim", "32", "--hidden", "64", "--experts", "4"});
  EXPECT_EQ(names(r), (std::vector<std::string>{"moe_forward", "moe_forward_backward"}));
  for (const auto& j : r) EXPECT_TRUE(j.contains("gflops"));
}

TEST(BenchCli, TrainStepFindsTheTinyPresetByDefault) {
  MG_REQUIRE_CLI();
  const auto r = run_json("train-step", {"--batch", "1", "--seq-len", "16", "--steps", "1",
                                         "--reference-gflops", "100"});
  ASSERT_EQ(r.size(), 1u);
  const auto& j = r[0];
  EXPECT_EQ(j["sizes"]["config"], "tiny");
  EXPECT_GT(j["tokens_per_s"].get<double>(), 0.0);
  EXPECT_GT(j["extra"]["peak_device_bytes"].get<double>(), 0.0);
  EXPECT_GT(j["extra"]["estimate_total_bytes"].get<double>(), 0.0);
  // MFU = model GFLOP/s over the reference rate given.
  EXPECT_NEAR(j["extra"]["mfu"].get<double>(), j["gflops"].get<double>() / 100.0, 1e-9);
  EXPECT_EQ(j["sizes"]["param_dtype"], "fp32");
  EXPECT_EQ(j["extra"]["loss_scaling"], false);
  // fp16 parameters: the trainer's loss-scaled step, and the smaller memory estimate.
  const auto h = run_json("train-step", {"--batch", "1", "--seq-len", "16", "--steps", "1", "--param-dtype", "fp16"});
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0]["sizes"]["param_dtype"], "fp16");
  EXPECT_EQ(h[0]["extra"]["loss_scaling"], true);
  EXPECT_EQ(h[0]["extra"]["skipped_steps"], 0);
  EXPECT_LT(h[0]["extra"]["memory_estimate"]["weights"].get<double>(),
            0.6 * j["extra"]["memory_estimate"]["weights"].get<double>());
}

TEST(BenchCli, GenerateFindsTheTinyPresetByDefault) {
  MG_REQUIRE_CLI();  // `bench all` runs generate with no options: it must need none
  const auto r = run_json("generate", {"--positions", "4,9", "--batches", "1,2", "--tokens", "2"});
  ASSERT_EQ(r.size(), 4u);
  for (const auto& j : r) {
    EXPECT_EQ(j["sizes"]["config"], "tiny");
    EXPECT_GT(j["tokens_per_s"].get<double>(), 0.0);
  }
  EXPECT_EQ(r[0]["sizes"]["position"], 4);
  EXPECT_EQ(r[3]["sizes"]["batch"], 2);
}

TEST(BenchCli, Int4KernelsAndAnInt4BaseDecoding) {
  MG_REQUIRE_CLI();
  const auto r = run_json("int4", {"--out", "24", "--in", "64", "--group", "32", "--tokens", "9"});
  EXPECT_EQ(names(r), (std::vector<std::string>{"int4_quantize", "int4_dequantize f32", "int4_linear fused",
                                                "dense fp32 linear", "int4_linear fused", "dense fp32 linear",
                                                "int4_linear fused", "int4_linear dequantize + GEMM", "dense fp32 linear",
                                                "int4_linear dequantize + GEMM", "dense fp32 linear", "error int4", "error nf4"}));
  EXPECT_GT(r[3]["extra"]["int4_fused_speedup"].get<double>(), 0.0);
  EXPECT_GT(r[11]["extra"]["relative_l1_error"].get<double>(), 0.0);
  const auto g = run_json("generate", {"--positions", "4", "--batches", "1", "--tokens", "2", "--base", "int4"});
  ASSERT_EQ(g.size(), 1u);
  EXPECT_EQ(g[0]["sizes"]["base"], "int4");
  EXPECT_GT(g[0]["tokens_per_s"].get<double>(), 0.0);
}

TEST(BenchCli, TokenizerOnTheSharedData) {
  MG_REQUIRE_CLI();
  const std::string data = mgtest::shared_data().string();
  if (data.empty() || !std::filesystem::is_directory(std::filesystem::path(data) / "gpt2")) GTEST_SKIP() << "no shared data";
  const auto r = run_json("tokenizer", {"--data", data});
  ASSERT_EQ(r.size(), 5u);
  for (const auto& j : r) EXPECT_EQ(j["device_type"], "host");
  EXPECT_GT(r[0]["tokens_per_s"].get<double>(), 0.0);
  EXPECT_EQ(r[4]["name"], "tokenizer_bpe_train_8k");
}

// bench serve warms up before timing: one untimed request per client of every client count
// (1 + 2 = 3 here), so no timed point pays the kernel builds. (The first version's warm-up loop
// ended before its first request and sent none: warmup_requests 0.)
TEST(BenchCli, ServeWarmsUpEveryClientCountBeforeTiming) {
  MG_REQUIRE_CLI();
  std::vector<std::string> args = {"bench", "serve", "--clients", "1,2", "--seconds", "0.3", "--prompt-tokens", "4",
                                   "--max-tokens", "3"};
  args.insert(args.end(), kTinyPeaks.begin(), kTinyPeaks.end());
  const auto r = run_cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::istringstream lines(r.output);
  std::vector<int64_t> clients;
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] != '{') continue;
    const auto j = nlohmann::json::parse(line);
    ASSERT_EQ(j["name"], "serve") << line;
    clients.push_back(j["sizes"]["clients"].get<int64_t>());
    EXPECT_EQ(j["extra"]["warmup_requests"], 3) << line;
    EXPECT_GT(j["extra"]["requests"].get<int64_t>(), 0) << line;
    EXPECT_GE(j["extra"]["ttft_max_ms"].get<double>(), j["extra"]["ttft_p50_ms"].get<double>()) << line;
  }
  EXPECT_EQ(clients, (std::vector<int64_t>{1, 2})) << r.output;
}

TEST(BenchCli, BadInputIsOneClearLine) {
  MG_REQUIRE_CLI();
  auto r = run_cli({"bench", "frobnicate"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.output, "error: no benchmark named 'frobnicate'")) << r.output;
  r = run_cli({"bench", "adamw", "--bogus", "1"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.output, "error: unknown option --bogus for `bench adamw`")) << r.output;
  r = run_cli({"bench", "adamw", "--n"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.output, "error: --n needs a value")) << r.output;
  r = run_cli({"bench", "adamw", "stray"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.output, "error: unexpected argument 'stray'")) << r.output;
  r = run_cli({"bench", "copy", "--peak-size", "big"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.output, "error: --peak-size must be an integer, not 'big'")) << r.output;
  // A bad MAGELLANO_GEMM_SKINNY is refused at the first GEMM (the peak measurement).
  r = run_cli({"bench", "copy", "--peak-size", "16", "--peak-repeats", "1", "--copy-mib", "1"},
              {"MAGELLANO_GEMM_SKINNY=yes"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.output, "error: MAGELLANO_GEMM_SKINNY must be 0 or 1, got 'yes'.")) << r.output;
  // Checked by the benchmark itself, after the (tiny) peaks.
  std::vector<std::string> args = {"bench", "adamw", "--n", "12x"};
  args.insert(args.end(), kTinyPeaks.begin(), kTinyPeaks.end());
  r = run_cli(args);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.output, "error: --n must be an integer, not '12x'")) << r.output;
  args[3] = "0";
  r = run_cli(args);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.output, "error: --n must be between 1 and 32768, not 0")) << r.output;
  args = {"bench", "scan", "--shapes", "4x5"};
  args.insert(args.end(), kTinyPeaks.begin(), kTinyPeaks.end());
  r = run_cli(args);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.output, "error: --shapes: bad shape '4x5'")) << r.output;
  args = {"bench", "train-step", "--param-dtype", "bf16"};
  args.insert(args.end(), kTinyPeaks.begin(), kTinyPeaks.end());
  r = run_cli(args);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.output, "error: --param-dtype must be fp32 or fp16, got 'bf16'.")) << r.output;
  args = {"bench", "train-step", "--config", "/nonexistent/x.json"};
  args.insert(args.end(), kTinyPeaks.begin(), kTinyPeaks.end());
  r = run_cli(args);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.output, "error: ")) << r.output;
  EXPECT_FALSE(has(r.output, "\"name\"")) << "no result on failure: " << r.output;
}
