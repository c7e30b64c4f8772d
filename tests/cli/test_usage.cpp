// The magellano CLI as a real process: usage, and the bad-input paths a user meets first
// (unknown command or option, a number out of range, no OpenCL driver, a device that is not
// there, a stdout that cannot be written): one clear line and a non-zero exit.
#include <gtest/gtest.h>

#include <filesystem>

#include "cli.hpp"
#include "error_text.hpp"
#include "project_files.hpp"

using mgtest::has;
using mgtest::run_cli;

TEST(Cli, UsageAndUnknownCommands) {
  MG_REQUIRE_CLI();
  auto r = run_cli({});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.output, "usage: magellano <command>")) << r.output;
  r = run_cli({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* cmd : {"info", "demo", "tokenize", "train-tokenizer"}) EXPECT_TRUE(has(r.output, cmd)) << cmd;
  r = run_cli({"frobnicate"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.output, "error: unknown command 'frobnicate'")) << r.output;
  r = run_cli({"info", "--bogus"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.output, "error: unrecognised option '--bogus'")) << r.output;
}

TEST(Cli, NoOpenClDriverIsAClearError) {
  MG_REQUIRE_CLI();
  const auto empty = std::filesystem::temp_directory_path() / "mg-no-icd";
  std::filesystem::create_directories(empty);
  for (const auto& args : {std::vector<std::string>{"info"}, {"demo", "--steps", "1"}}) {
    auto r = run_cli(args, {"OCL_ICD_VENDORS=" + empty.string()});
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_TRUE(has(r.output, "o OpenCL device found")) << r.output;
  }
}

TEST(Cli, ADeviceThatIsNotThereListsTheDevices) {
  MG_REQUIRE_CLI();
  auto r = run_cli({"demo", "--device", "no-such-device", "--steps", "1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.output, "error: Device 'no-such-device' matches no device or platform name")) << r.output;
  EXPECT_TRUE(has(r.output, "0:0")) << r.output;  // the listing
  r = run_cli({"demo", "--steps", "1"}, {"MAGELLANO_DEVICE=7:7"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.output, "Device '7:7' matches no platform:device index")) << r.output;
}

// Every numeric option of every command is range-checked when parsed: a value out of range or
// not a number is one line stating the range, exit 2, before any file or device is touched
// (the paths here do not exist, which would be the error otherwise).
TEST(Cli, NumericOptionsStateTheirRange) {
  MG_REQUIRE_CLI();
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<std::string> eval = {"eval", "--checkpoint", "nowhere", "--tokens", "nowhere.tok"};
  const std::vector<std::string> gen = {"generate", "--checkpoint", "nowhere", "--prompt-ids", "1"};
  const std::vector<std::string> tok = {"tokenize", "--tokenizer", "nowhere", "--in", "nowhere.txt", "--out", "x"};
  const std::vector<std::string> bpe = {"train-tokenizer", "--in", "nowhere.txt", "--out", "x"};
  const auto with = [](std::vector<std::string> base, std::vector<std::string> more) {
    base.insert(base.end(), more.begin(), more.end());
    return base;
  };
  const std::vector<Case> cases = {
      {with(eval, {"--batch", "0"}), "--batch must be in [1, 1048576] (an integer), got '0'"},
      {with(eval, {"--batch", "2x"}), "--batch must be in [1, 1048576] (an integer), got '2x'"},
      {with(eval, {"--seq-len=-5"}), "--seq-len must be in [2, 16777216] (an integer), got '-5'"},
      {with(eval, {"--seq-len", "99999999999999999999"}), "--seq-len must be in [2, 16777216]"},
      {with(tok, {"--threads=-1"}), "--threads must be in [0, 1024] (an integer), got '-1'"},
      {with(tok, {"--val-fraction", "1"}), "--val-fraction must be in [0, 1) (a finite number), got '1'"},
      {with(tok, {"--val-fraction", "nan"}), "--val-fraction must be in [0, 1) (a finite number), got 'nan'"},
      {with(bpe, {"--vocab-size=-1"}), "--vocab-size must be in [257, 2147483648] (an integer), got '-1'"},
      {with(gen, {"--max-new-tokens=-3"}), "--max-new-tokens must be >= 0 (an integer), got '-3'"},
      {with(gen, {"--top-k=-1"}), "--top-k must be >= 0 (an integer), got '-1'"},
      {with(gen, {"--top-p", "1.5"}), "--top-p must be in [0, 1] (a finite number), got '1.5'"},
      {with(gen, {"--temperature", "inf"}), "--temperature must be >= 0 (a finite number), got 'inf'"},
      {with(gen, {"--repetition-penalty", "0"}), "--repetition-penalty must be > 0 (a finite number), got '0'"},
      {with(gen, {"--seed", "18446744073709551616"}), "--seed must be >= 0 (an integer)"},
      {{"demo", "--steps", "0"}, "--steps must be in [1, 2147483647] (an integer), got '0'"},
      {{"demo", "--batch", "4294967297"}, "--batch must be in [1, 2147483647] (an integer), got '4294967297'"},
      {{"demo", "--lr=-0.1"}, "--lr must be > 0 (a finite number), got '-0.1'"},
      {{"tune-gemm", "--fraction", "0"}, "--fraction must be in (0, 1] (a finite number), got '0'"},
      {{"tune-gemm", "--size", "8"}, "--size must be in [16, 16384] (an integer), got '8'"},
      {{"tune-gemm", "--repeats", "1000"}, "--repeats must be in [1, 100] (an integer), got '1000'"},
  };
  for (const auto& c : cases) EXPECT_TRUE(mgtest::fails_with_one_line(mgtest::run_cli_split(c.args), 2, c.says));
}

// Output that cannot be written (a full disk; here /dev/full) is an error, not exit 0.
TEST(Cli, AFullStdoutIsAnError) {
  MG_REQUIRE_CLI();
  const std::string config = mgtest::project_file("configs/tiny.json").string();
  for (const auto& args : {std::vector<std::string>{"--version"}, {"--help"}, {"info", "--help"},
                           {"info", "--config", config}, {"info", "--config", config, "--json"}}) {
    const auto r = mgtest::run_cli_split(args, {}, "/dev/full");
    EXPECT_TRUE(mgtest::fails_with_one_line(r, 1, "could not write all of the output to stdout (No space left on device)"))
        << args.back();
  }
}
