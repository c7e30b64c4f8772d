#include "magellano/io/project_files.hpp"

#include <unistd.h>

#include <climits>
#include <cstdlib>

namespace magellano::io {
namespace fs = std::filesystem;

std::vector<fs::path> project_roots(const fs::path& built_from) {
  std::vector<fs::path> roots;
  if (const char* env = std::getenv("MAGELLANO_SOURCE_DIR"); env && *env) roots.emplace_back(env);
  roots.push_back(fs::current_path());
  char exe[PATH_MAX];
  const ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (len > 0) {
    const fs::path bin = fs::path(std::string(exe, len)).parent_path();
    for (const fs::path& d : {bin, bin.parent_path(), bin.parent_path().parent_path()}) roots.push_back(d);
  }
  if (!built_from.empty()) roots.push_back(built_from);
  return roots;
}

fs::path find_project_path(const std::vector<std::string>& candidates, const fs::path& built_from,
                           std::string* searched) {
  for (const auto& root : project_roots(built_from))
    for (const auto& c : candidates) {
      std::error_code ec;
      if (fs::exists(root / c, ec)) return root / c;
      if (searched) *searched += (searched->empty() ? "" : ", ") + (root / c).parent_path().string();
    }
  return {};
}

fs::path find_shared_data(const fs::path& built_from) {
  if (const char* env = std::getenv("MAGELLANO_SHARED_DATA"); env && *env) return env;
  return find_project_path({"shared/data", "../shared/data"}, built_from);
}

}  // namespace magellano::io
