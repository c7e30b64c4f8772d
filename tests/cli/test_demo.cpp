// `magellano demo` as a real process: it trains and the loss falls; a request larger than the
// device is one clear line and a non-zero exit.
#include <gtest/gtest.h>

#include "cli.hpp"
#include "error_text.hpp"

using mgtest::has;
using mgtest::run_cli;

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
