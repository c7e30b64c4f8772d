// What a folder holds, for tests that must show a command lost or changed nothing: every file
// and folder under it (hidden ones included), each file with a hash of its bytes.
#pragma once
#include <filesystem>
#include <map>
#include <string>

namespace mgtest {

// relative path -> "dir", or the file's size and FNV-1a hash ("1234:9fdc8791848da864")
using FolderSnapshot = std::map<std::string, std::string>;
FolderSnapshot snapshot(const std::filesystem::path& dir);

// "" when equal, else the first difference ("changed: run/metrics.jsonl").
std::string difference(const FolderSnapshot& before, const FolderSnapshot& after);

}  // namespace mgtest
