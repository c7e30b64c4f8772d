// Opening the files a user names (configs, checkpoints, token files, tokenizer files, tuning
// files): only regular files are opened for reading, so a FIFO, a socket, a device or a folder
// where a file is expected gets one clear line instead of blocking forever or a confusing error.
// Every reader of user files goes through InputFile::open or read_whole_file.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

namespace magellano {

// A regular file open for reading (close-on-exec); closed when destroyed. Move-only.
class InputFile {
 public:
  // Throws magellano::Error naming `what` (e.g. "token file") and the path when the path is
  // missing or cannot be opened, is a folder, or is not a regular file; `hint` (e.g. " Make one
  // with `magellano tokenize`.") is appended to the line. Never blocks: a FIFO is opened
  // non-blocking and refused.
  static InputFile open(const std::filesystem::path& path, const std::string& what,
                        const std::string& hint = "");

  InputFile(InputFile&& other) noexcept;
  InputFile& operator=(InputFile&& other) noexcept;
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
  ~InputFile();

  int fd() const { return fd_; }
  uint64_t size() const { return size_; }  // bytes, when opened
  const std::filesystem::path& path() const { return path_; }

 private:
  InputFile() = default;
  int fd_ = -1;
  uint64_t size_ = 0;
  std::filesystem::path path_;
};

// The whole contents of a regular file (InputFile::open's checks and messages), or an Error
// naming `what` and the path when reading fails.
std::string read_whole_file(const std::filesystem::path& path, const std::string& what,
                            const std::string& hint = "");

}  // namespace magellano
