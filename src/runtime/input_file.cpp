#include "magellano/runtime/input_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "magellano/runtime/error.hpp"

namespace magellano {

InputFile InputFile::open(const std::filesystem::path& path, const std::string& what,
                          const std::string& hint) {
  const std::string name = what + " " + path.string();
  InputFile f;
  f.path_ = path;
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
  f.fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (f.fd_ < 0)
    throw Error(name + " is missing or cannot be opened: " + std::strerror(errno) + "." + hint);
  struct stat st{};
  if (::fstat(f.fd_, &st) != 0)
    throw Error("cannot read " + name + ": " + std::strerror(errno) + "." + hint);
  const std::string what_to_do = hint.empty() ? " Give the path of a file." : hint;
  if (S_ISDIR(st.st_mode)) throw Error(name + " is a folder, not a file." + what_to_do);
  if (!S_ISREG(st.st_mode)) throw Error(name + " is not a regular file (a FIFO, socket or device)." + what_to_do);
  // Back to blocking reads (regular files ignore the flag; this keeps the descriptor ordinary).
  const int flags = ::fcntl(f.fd_, F_GETFL);
  if (flags >= 0) ::fcntl(f.fd_, F_SETFL, flags & ~O_NONBLOCK);
  f.size_ = static_cast<uint64_t>(st.st_size);
  return f;
}

InputFile::InputFile(InputFile&& other) noexcept { *this = std::move(other); }

InputFile& InputFile::operator=(InputFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    size_ = other.size_;
    path_ = std::move(other.path_);
  }
  return *this;
}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

std::string read_whole_file(const std::filesystem::path& path, const std::string& what,
                            const std::string& hint) {
  const InputFile f = InputFile::open(path, what, hint);
  std::string text;
  text.reserve(f.size());
  char buf[1 << 16];
  for (;;) {
    const ssize_t got = ::read(f.fd(), buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0)
      throw Error("cannot read " + what + " " + path.string() + ": " + std::strerror(errno) + "." + hint);
    if (got == 0) break;
    text.append(buf, static_cast<size_t>(got));
  }
  return text;
}

}  // namespace magellano
