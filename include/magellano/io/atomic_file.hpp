// Writing output files so that a failure never leaves a half-written file behind: data goes to
// "<path>.tmp-<pid>" first, is fsync'd, and is renamed over <path> only once complete.
#pragma once
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>

namespace magellano::io {

// Writes content to path atomically (temp file + rename). Throws magellano::Error on failure.
void write_file_atomically(const std::filesystem::path& path, std::string_view content);

// An output file under construction: write() appends, commit() renames it into place. Destroying
// it without commit() deletes the temporary file.
class AtomicFile {
 public:
  explicit AtomicFile(std::filesystem::path path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t bytes);
  // Overwrites bytes at an absolute offset already written (e.g. a header's count).
  void write_at(uint64_t offset, const void* data, size_t bytes);
  void commit();
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_, temp_;
  std::FILE* file_ = nullptr;
};

}  // namespace magellano::io
