// The magellano CLI as a real process: usage, `info`, `demo`, and the bad-input paths a user
// meets first (unknown command or option, no OpenCL driver, a device that is not there, a
// request larger than the device): one clear line and a non-zero exit.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

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

TEST(Cli, InfoJsonListsEveryDevice) {
  MG_REQUIRE_CLI();
  auto r = run_cli({"info", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  ASSERT_FALSE(j["devices"].empty());
  for (const auto& d : j["devices"])
    for (const char* key : {"name", "platform", "driver_version", "opencl_version", "compute_units",
                            "global_mem_bytes", "max_alloc_bytes", "local_mem_bytes", "fp16", "fp64"})
      EXPECT_TRUE(d.contains(key)) << key;
  EXPECT_TRUE(j["default_device"].is_string());
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

TEST(Cli, TooLargeForTheDeviceIsAClearError) {
  MG_REQUIRE_CLI();
  // 2^30 examples x 64 floats = 256 GiB: more than any single allocation (and the whole memory)
  // of the test devices (an H200 allows 35 GiB in one buffer, so 32 GiB was not enough).
  auto r = run_cli({"demo", "--batch", "1073741824", "--steps", "1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.output, "error: Cannot allocate 256.00 GiB of activations")) << r.output;
  EXPECT_TRUE(has(r.output, "Use a smaller batch")) << r.output;
}

TEST(Cli, DemoTrainsAndTheLossFalls) {
  MG_REQUIRE_CLI();
  auto r = run_cli({"demo", "--steps", "40", "--batch", "64", "--hidden", "64"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(has(r.output, "step   40/40")) << r.output;
  EXPECT_TRUE(has(r.output, "x lower); peak device memory")) << r.output;
}
