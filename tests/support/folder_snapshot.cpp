#include "folder_snapshot.hpp"

#include <cstdio>
#include <fstream>
#include <iterator>

namespace mgtest {
namespace fs = std::filesystem;

FolderSnapshot snapshot(const fs::path& dir) {
  FolderSnapshot s;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string rel = fs::relative(e.path(), dir).string();
    if (e.is_directory()) {
      s[rel] = "dir";
      continue;
    }
    std::ifstream in(e.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
    char buf[40];
    std::snprintf(buf, sizeof buf, "%zu:%016llx", bytes.size(), static_cast<unsigned long long>(h));
    s[rel] = buf;
  }
  return s;
}

std::string difference(const FolderSnapshot& before, const FolderSnapshot& after) {
  for (const auto& [path, hash] : before) {
    const auto it = after.find(path);
    if (it == after.end()) return "lost: " + path;
    if (it->second != hash) return "changed: " + path;
  }
  for (const auto& [path, hash] : after)
    if (!before.count(path)) return "added: " + path;
  return "";
}

}  // namespace mgtest
