// The magellano CLI as a real process: usage, and the bad-input paths a user meets first
// (unknown command or option, no OpenCL driver, a device that is not there): one clear line
// and a non-zero exit.
#include <gtest/gtest.h>

#include <filesystem>

#include "cli.hpp"
#include "error_text.hpp"

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
