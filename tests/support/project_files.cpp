#include "project_files.hpp"

#include <cstdlib>

#include "magellano/io/project_files.hpp"
#include "magellano/runtime/error.hpp"

namespace mgtest {
namespace fs = std::filesystem;

namespace {
#ifdef MAGELLANO_TEST_SOURCE_DIR
const fs::path kBuiltFrom = MAGELLANO_TEST_SOURCE_DIR;
#else
const fs::path kBuiltFrom;
#endif
}  // namespace

fs::path project_file(const std::string& relative) {
  std::string searched;
  const fs::path p = magellano::io::find_project_path({relative}, kBuiltFrom, &searched);
  if (p.empty())
    throw magellano::Error("cannot find " + relative + " (looked in " + searched +
                           "); set MAGELLANO_SOURCE_DIR to the source tree.");
  return p;
}

fs::path fixture_file(const std::string& file) {
  if (const char* env = std::getenv("MAGELLANO_TEST_FIXTURES"); env && *env) return fs::path(env) / file;
  return project_file("tests/fixtures/" + file);
}

fs::path shared_data() {
  const fs::path p = magellano::io::find_shared_data(kBuiltFrom);
  std::error_code ec;
  return !p.empty() && fs::is_directory(p, ec) ? p : fs::path();
}

}  // namespace mgtest
