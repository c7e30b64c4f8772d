// `magellano info --json` as a real process: every device with the keys the command promises.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli.hpp"

using mgtest::run_cli;

TEST(Cli, InfoJsonListsEveryDevice) {
  MG_REQUIRE_CLI();
  auto r = run_cli({"info", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  ASSERT_FALSE(j["devices"].empty());
  for (const auto& d : j["devices"])
    for (const char* key : {"name", "platform", "driver_version", "opencl_version", "compute_units",
                            "global_mem_bytes", "max_alloc_bytes", "local_mem_bytes", "fp16", "fp64",
                            "kernel_mapping"})
      EXPECT_TRUE(d.contains(key)) << key;
  EXPECT_TRUE(j["default_device"].is_string());
}
