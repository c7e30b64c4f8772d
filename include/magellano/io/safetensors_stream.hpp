// A safetensors file written one tensor at a time: the header (every name, dtype and shape, in
// data order) is fixed up front, then each tensor's bytes are appended as they become
// available, so a writer holds about one tensor in memory. Same file layout and atomicity as
// write_safetensors (temporary file beside the path, fsync, rename on commit()).
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "magellano/io/safetensors.hpp"

namespace magellano::io {

class AtomicFile;

struct StEntry {
  std::string name;
  StDType dtype = StDType::F32;
  std::vector<int64_t> shape;
  uint64_t nbytes() const;  // numel(shape) * dtype size
};

class SafetensorsStreamWriter {
 public:
  // Validates the entries (names unique, non-empty, not "__metadata__"; sizes >= 0) and writes
  // the header to the temporary file. Throws magellano::Error naming `path` otherwise.
  SafetensorsStreamWriter(const std::filesystem::path& path, std::vector<StEntry> entries,
                          const std::map<std::string, std::string>& metadata = {});
  ~SafetensorsStreamWriter();  // without commit(): the temporary file is deleted
  SafetensorsStreamWriter(const SafetensorsStreamWriter&) = delete;
  SafetensorsStreamWriter& operator=(const SafetensorsStreamWriter&) = delete;

  // Appends the next tensor's bytes. `name` must be the next entry and `bytes` its size.
  void write(const std::string& name, const void* data, uint64_t bytes);
  void write(const std::string& name, const StTensor& t);  // checks dtype and shape too
  // The entry write() expects next (nullptr when all are written).
  const StEntry* next() const;
  // Checks that every tensor was written, then renames the file into place.
  void commit();
  uint64_t bytes_total() const { return bytes_total_; }  // the file's final size

 private:
  std::filesystem::path path_;
  std::vector<StEntry> entries_;
  size_t written_ = 0;
  uint64_t bytes_total_ = 0;
  std::unique_ptr<AtomicFile> file_;
};

}  // namespace magellano::io
