// Running the magellano CLI as a real process from tests.
#pragma once
#include <string>
#include <vector>

namespace mgtest {

// $MAGELLANO_CLI, else `magellano` beside the test binary or one folder up (build/tests/..),
// else the one CMake built; empty when the file is missing.
std::string cli_path();

struct CliRun {
  int exit_code;       // -1 when the process did not exit normally
  std::string output;  // stdout and stderr together
};
// Runs the CLI with `args` (each passed as one shell-quoted word) and optional environment
// assignments ("NAME=value") in front.
CliRun run_cli(const std::vector<std::string>& args, const std::vector<std::string>& env = {});

}  // namespace mgtest

#define MG_REQUIRE_CLI()                                                               \
  do {                                                                                 \
    if (mgtest::cli_path().empty())                                                    \
      GTEST_SKIP() << "the magellano CLI was not found (set MAGELLANO_CLI); skipping"; \
  } while (0)
