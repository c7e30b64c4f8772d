#include "magellano/io/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "magellano/runtime/error.hpp"

namespace magellano::io {

AtomicFile::AtomicFile(std::filesystem::path path) : path_(std::move(path)) {
  temp_ = path_;
  temp_ += ".tmp-" + std::to_string(::getpid());
  file_ = std::fopen(temp_.c_str(), "wb");
  if (!file_)
    throw Error("cannot create " + temp_.string() + ": " + std::strerror(errno) +
                ". Check that the folder exists and is writable.");
}

AtomicFile::~AtomicFile() {
  if (file_) {
    std::fclose(file_);
    std::error_code ec;
    std::filesystem::remove(temp_, ec);
  }
}

void AtomicFile::write(const void* data, size_t bytes) {
  if (bytes && std::fwrite(data, 1, bytes, file_) != bytes)
    throw Error("cannot write " + temp_.string() + ": " + std::strerror(errno) +
                ". Is the disk full?");
}

void AtomicFile::write_at(uint64_t offset, const void* data, size_t bytes) {
  const long here = std::ftell(file_);
  if (std::fseek(file_, static_cast<long>(offset), SEEK_SET) != 0)
    throw Error("cannot seek in " + temp_.string() + ": " + std::strerror(errno));
  write(data, bytes);
  std::fseek(file_, here, SEEK_SET);
}

// Flushes the file's data to the disk, so a crash right after the rename never shows a file
// whose name is final but whose contents are missing.
void AtomicFile::commit() {
  const bool flushed = std::fflush(file_) == 0 && ::fsync(::fileno(file_)) == 0;
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  std::error_code ec;
  if (!flushed || !closed) {
    std::filesystem::remove(temp_, ec);
    throw Error("cannot finish writing " + path_.string() + ": " + std::strerror(errno) +
                ". Is the disk full?");
  }
  std::filesystem::rename(temp_, path_, ec);
  if (ec) {
    std::filesystem::remove(temp_, ec);
    throw Error("cannot rename " + temp_.string() + " to " + path_.string() + ": " + ec.message());
  }
  // Make the rename itself durable: fsync the folder that holds the entry (best effort; some
  // file systems refuse to open or sync folders).
  std::filesystem::path dir = path_.parent_path();
  if (dir.empty()) dir = ".";
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void write_file_atomically(const std::filesystem::path& path, std::string_view content) {
  AtomicFile f(path);
  f.write(content.data(), content.size());
  f.commit();
}

}  // namespace magellano::io
