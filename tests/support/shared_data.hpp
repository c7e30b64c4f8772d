// Helpers for tests on the shared data folder (../shared/data: tokenizers, corpora and their
// expected encodings): skipping when it is missing, reading its files, temp folders.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "project_files.hpp"
#include "temp_dir.hpp"

namespace mgdata {

// The shared data folder, empty when missing (tests/support/project_files.hpp).
using mgtest::shared_data;

// Skips the current test with a message when ../shared/data is missing.
#define MG_REQUIRE_SHARED_DATA()                                                         \
  do {                                                                                   \
    if (mgdata::shared_data().empty())                                                   \
      GTEST_SKIP() << "shared test data not found (set MAGELLANO_SHARED_DATA to the "    \
                      "folder ../shared/data); skipping";                                \
  } while (0)

std::string read_file(const std::filesystem::path& p);
void write_file(const std::filesystem::path& p, const std::string& content);
// The inputs of a case file split at `separator` (the file ends with one).
std::vector<std::string> split_cases(const std::string& text, const std::string& separator);
std::vector<uint32_t> parse_ids(const std::string& line);

using TempDir = mgtest::TempDir;  // tests/support/temp_dir.hpp

}  // namespace mgdata
