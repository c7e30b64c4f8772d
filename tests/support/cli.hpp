// Running the magellano CLI as a real process from tests.
#pragma once
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mgtest {

// $MAGELLANO_CLI, else `magellano` beside the test binary or one folder up (build/tests/..),
// else the one CMake built; empty when the file is missing.
std::string cli_path();

struct CliRun {
  int exit_code;       // -1 when the process did not exit normally
  std::string output;  // stdout and stderr together (run_cli_split: stdout only)
  std::string err;     // run_cli_split: stderr
};
// Runs the CLI with `args` (each passed as one shell-quoted word) and optional environment
// assignments ("NAME=value") in front.
CliRun run_cli(const std::vector<std::string>& args, const std::vector<std::string>& env = {});
// The same with stderr apart from stdout, and optionally stdout sent to `stdout_to` (e.g.
// "/dev/full") instead of captured.
CliRun run_cli_split(const std::vector<std::string>& args, const std::vector<std::string>& env = {},
                     const std::string& stdout_to = "");

// MAGELLANO_DEVICE=<$MAGELLANO_TEST_DEVICE> when that is set (the CLI then runs on the tests'
// device), else nothing.
std::vector<std::string> device_env();

// Success when `r` (from run_cli_split) exited with `code` and wrote exactly one line to stderr,
// starting with "error: " and containing `needle`.
::testing::AssertionResult fails_with_one_line(const CliRun& r, int code, const std::string& needle);

}  // namespace mgtest

#define MG_REQUIRE_CLI()                                                               \
  do {                                                                                 \
    if (mgtest::cli_path().empty())                                                    \
      GTEST_SKIP() << "the magellano CLI was not found (set MAGELLANO_CLI); skipping"; \
  } while (0)
