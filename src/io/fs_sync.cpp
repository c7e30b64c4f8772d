#include "fs_sync.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "magellano/runtime/error.hpp"

namespace magellano::io::detail {

void fsync_path(const std::filesystem::path& path) {
  const bool dir = std::filesystem::is_directory(path);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (dir ? O_DIRECTORY : 0));
  if (fd < 0)
    throw Error("cannot open " + path.string() + " to sync it: " + std::strerror(errno) + ".");
  int rc;
  do rc = ::fsync(fd);
  while (rc != 0 && errno == EINTR);
  const int err = errno;
  ::close(fd);
  if (rc != 0 && !(dir && (err == EINVAL || err == EROFS)))
    throw Error("cannot sync " + path.string() + " to disk: " + std::strerror(err) +
                ". Is the disk full or failing?");
}

void fsync_tree(const std::filesystem::path& dir) {
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.is_symlink()) continue;
    if (e.is_directory()) fsync_tree(e.path());
    else if (e.is_regular_file()) fsync_path(e.path());
  }
  fsync_path(dir);
}

}  // namespace magellano::io::detail
