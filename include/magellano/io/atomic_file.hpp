// Writing output files so that a failure never leaves a half-written file behind: data goes to
// an unnamed file in the target's folder (O_TMPFILE), is fsync'd, linked as "<path>.tmp-<pid>"
// and renamed over <path> only once complete. A process killed while writing leaves nothing.
// Where the file system has no unnamed files, the data is written under "<path>.tmp-<pid>"
// itself, which a kill leaves behind: remove_stale_temporaries() cleans those up.
#pragma once
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace magellano::io {

// Writes content to path atomically (temp file + rename). Throws magellano::Error on failure.
void write_file_atomically(const std::filesystem::path& path, std::string_view content);

// Removes "<path>.tmp-<pid>" files whose process no longer runs (left by a killed writer).
// Returns what it removed.
std::vector<std::filesystem::path> remove_stale_temporaries(const std::filesystem::path& path);

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
  bool unnamed_ = false;  // O_TMPFILE: no name until commit()
};

}  // namespace magellano::io
