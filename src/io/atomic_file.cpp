#include "magellano/io/atomic_file.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>

#include <cerrno>
#include <cstring>

#include "magellano/runtime/error.hpp"

namespace magellano::io {

namespace {

bool proc_fd_available() {
  static const bool yes = ::access("/proc/self/fd", X_OK) == 0;
  return yes;
}

std::filesystem::path folder_of(const std::filesystem::path& path) {
  return path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path();
}

bool is_digits(const std::string& s) {
  return !s.empty() && s.size() <= 9 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

AtomicFile::AtomicFile(std::filesystem::path path) : path_(std::move(path)) {
  temp_ = path_;
  temp_ += ".tmp-" + std::to_string(::getpid());
  // An unnamed file in the target's folder: a process killed while writing leaves nothing.
  // It gets a name only at commit(). Where the file system has no O_TMPFILE (or /proc is not
  // mounted), the file is written under temp_ instead.
  if (proc_fd_available()) {
    const int fd = ::open(folder_of(path_).c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
    if (fd >= 0) {
      file_ = ::fdopen(fd, "wb");
      if (file_) {
        unnamed_ = true;
        return;
      }
      ::close(fd);
    }
  }
  file_ = std::fopen(temp_.c_str(), "wb");
  if (!file_)
    throw Error("cannot create " + temp_.string() + ": " + std::strerror(errno) +
                ". Check that the folder exists and is writable.");
}

AtomicFile::~AtomicFile() {
  if (file_) {
    std::fclose(file_);
    std::error_code ec;
    if (!unnamed_) std::filesystem::remove(temp_, ec);
  }
}

void AtomicFile::write(const void* data, size_t bytes) {
  if (bytes && std::fwrite(data, 1, bytes, file_) != bytes)
    throw Error("cannot write " + path_.string() + ": " + std::strerror(errno) + ". Is the disk full?");
}

void AtomicFile::write_at(uint64_t offset, const void* data, size_t bytes) {
  const long here = std::ftell(file_);
  if (std::fseek(file_, static_cast<long>(offset), SEEK_SET) != 0)
    throw Error("cannot seek in " + path_.string() + ": " + std::strerror(errno));
  write(data, bytes);
  std::fseek(file_, here, SEEK_SET);
}

// Flushes the file's data to the disk, so a crash right after the rename never shows a file
// whose name is final but whose contents are missing.
void AtomicFile::commit() {
  const bool flushed = std::fflush(file_) == 0 && ::fsync(::fileno(file_)) == 0;
  int err = errno;
  std::error_code ec;
  // An unnamed file is linked to temp_ first (linkat cannot replace a file), then renamed over
  // path_ like a named one: temp_ exists only between those two calls.
  bool linked = !unnamed_;
  if (flushed && unnamed_) {
    const std::string proc = "/proc/self/fd/" + std::to_string(::fileno(file_));
    std::filesystem::remove(temp_, ec);  // stale, from an earlier process with our pid
    linked = ::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, temp_.c_str(), AT_SYMLINK_FOLLOW) == 0;
    if (!linked) err = errno;
  }
  const bool closed = std::fclose(file_) == 0;
  if (closed && !flushed) err = errno;
  file_ = nullptr;
  if (!flushed || !closed || !linked) {
    std::filesystem::remove(temp_, ec);
    throw Error("cannot finish writing " + path_.string() + ": " + std::strerror(err) + ". Is the disk full?");
  }
  std::filesystem::rename(temp_, path_, ec);
  if (ec) {
    std::filesystem::remove(temp_, ec);
    throw Error("cannot rename " + temp_.string() + " to " + path_.string() + ": " + ec.message());
  }
  // Make the rename itself durable: fsync the folder that holds the entry (best effort; some
  // file systems refuse to open or sync folders).
  const int fd = ::open(folder_of(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

std::vector<std::filesystem::path> remove_stale_temporaries(const std::filesystem::path& path) {
  std::vector<std::filesystem::path> removed;
  const std::string prefix = path.filename().string() + ".tmp-";
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(folder_of(path), ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) != 0 || !e.is_regular_file(ec)) continue;
    const std::string pid = name.substr(prefix.size());
    if (!is_digits(pid)) continue;
    const pid_t p = static_cast<pid_t>(std::stol(pid));
    if (p == ::getpid() || ::kill(p, 0) == 0 || errno != ESRCH) continue;  // its writer may still run
    if (std::filesystem::remove(e.path(), ec)) removed.push_back(e.path());
  }
  return removed;
}

void write_file_atomically(const std::filesystem::path& path, std::string_view content) {
  AtomicFile f(path);
  f.write(content.data(), content.size());
  f.commit();
}

}  // namespace magellano::io
