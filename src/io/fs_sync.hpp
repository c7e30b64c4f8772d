// fsync for files and folders by path (private to src/io). Making a rename durable takes an
// fsync of the folder that holds the new entry; making a folder's contents durable takes an fsync
// of every file and subfolder in it.
#pragma once
#include <filesystem>

namespace magellano::io::detail {

// fsyncs one file or folder. Throws magellano::Error if it cannot be opened or synced (folders:
// EINVAL from a file system that does not sync folders is ignored).
void fsync_path(const std::filesystem::path& path);

// fsyncs every regular file and folder under dir, innermost first, then dir itself.
void fsync_tree(const std::filesystem::path& dir);

}  // namespace magellano::io::detail
