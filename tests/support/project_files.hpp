// Where the tests find the project's files that are not compiled in (configs/, tests/fixtures/,
// the shared data folder): io/project_files.hpp's search, the one the CLI uses, so the test
// binaries also run from a bundle on another machine. In order: $MAGELLANO_SOURCE_DIR, the
// current folder, the test binary's folder and the two above it (build/tests/../.. is the
// checkout), then the source tree the tests were built from as the last resort.
#pragma once
#include <filesystem>
#include <string>

namespace mgtest {

// A file of the source tree by its relative path (e.g. "configs/tiny.json"); throws
// magellano::Error naming the folders searched when it is nowhere.
std::filesystem::path project_file(const std::string& relative);

// tests/fixtures/FILE: under $MAGELLANO_TEST_FIXTURES when set, else as project_file.
std::filesystem::path fixture_file(const std::string& file);

// The shared data folder ($MAGELLANO_SHARED_DATA, else shared/data or ../shared/data as
// above); empty when it does not exist.
std::filesystem::path shared_data();

}  // namespace mgtest
