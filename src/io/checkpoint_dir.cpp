#include "magellano/io/checkpoint_dir.hpp"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstring>

#include "fs_sync.hpp"
#include "magellano/runtime/error.hpp"

namespace fs = std::filesystem;

namespace magellano::io {

namespace {

std::string pid_str() { return std::to_string(::getpid()); }

bool valid_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name[0] != '.' &&
         name.find('/') == std::string::npos;
}

// Removes a directory tree; errors are reported, not thrown (used on cleanup paths).
void remove_quietly(const fs::path& p) {
  std::error_code ec;
  fs::remove_all(p, ec);
}

}  // namespace

CheckpointDir::CheckpointDir(fs::path parent, std::string name) : parent_(std::move(parent)) {
  if (!valid_name(name))
    throw Error("checkpoint name \"" + name + "\" is not a plain folder name; use e.g. " +
                checkpoint_name(0) + ".");
  final_ = parent_ / name;
  temp_ = parent_ / (".tmp-" + name + "-" + pid_str());
  std::error_code ec;
  fs::create_directories(parent_, ec);
  if (ec || !fs::is_directory(parent_))
    throw Error("cannot create checkpoint folder " + parent_.string() + ": " + ec.message() +
                ". Check the path and its permissions.");
  fs::remove_all(temp_, ec);  // stale, from an earlier failure of a process with our pid
  if (ec || !fs::create_directory(temp_, ec) || ec)
    throw Error("cannot create " + temp_.string() + ": " + ec.message() +
                ". Check that the folder is writable.");
}

CheckpointDir::~CheckpointDir() {
  if (!committed_) remove_quietly(temp_);
}

const fs::path& CheckpointDir::commit() {
  if (committed_) return final_;
  detail::fsync_tree(temp_);
  std::error_code ec;
  const auto st = fs::symlink_status(final_, ec);
  if (fs::exists(st) && !fs::is_directory(st))
    throw Error("cannot save checkpoint: " + final_.string() +
                " exists and is not a directory. Move it away.");

  fs::path previous;  // where the replaced checkpoint ends up, to be deleted last
  if (!fs::exists(st)) {
    fs::rename(temp_, final_, ec);
    if (ec)
      throw Error("cannot rename " + temp_.string() + " to " + final_.string() + ": " +
                  ec.message() + ".");
  } else if (::renameat2(AT_FDCWD, temp_.c_str(), AT_FDCWD, final_.c_str(), RENAME_EXCHANGE) ==
             0) {
    previous = temp_;  // the swap put the previous checkpoint under the temporary name
  } else {
    // No atomic swap here (an old kernel, some network file systems): move the previous
    // checkpoint aside, move the new one in. A crash in between leaves the previous one
    // under .old-<name>-<pid>, complete.
    previous = parent_ / (".old-" + final_.filename().string() + "-" + pid_str());
    remove_quietly(previous);
    fs::rename(final_, previous, ec);
    if (!ec) fs::rename(temp_, final_, ec);
    if (ec)
      throw Error("cannot replace checkpoint " + final_.string() + ": " + ec.message() +
                  (fs::exists(previous) ? ". The previous one is in " + previous.string() + "."
                                        : "."));
  }
  committed_ = true;
  detail::fsync_path(parent_);  // make the rename durable
  if (!previous.empty()) remove_quietly(previous);
  return final_;
}

fs::path write_checkpoint_dir(const fs::path& parent, const std::string& name,
                              const std::function<void(const fs::path& dir)>& write) {
  CheckpointDir c(parent, name);
  write(c.dir());
  return c.commit();
}

void refuse_existing_output(const fs::path& out, const std::string& command) {
  std::error_code ec;
  if (fs::exists(fs::symlink_status(out, ec)))
    throw Error(command + ": the output " + out.string() + " already exists (" + command +
                " never overwrites). Choose a new path or remove it first.");
}

std::string checkpoint_name(int64_t step) {
  if (step < 0) throw Error("checkpoint step " + std::to_string(step) + " is negative.");
  std::string digits = std::to_string(step);
  if (digits.size() < 8) digits.insert(0, 8 - digits.size(), '0');
  return "step-" + digits;
}

std::optional<int64_t> checkpoint_step(const std::string& dir_name) {
  constexpr std::string_view prefix = "step-";
  if (dir_name.rfind(prefix, 0) != 0) return std::nullopt;
  const std::string digits = dir_name.substr(prefix.size());
  if (digits.size() < 8 || digits.size() > 18 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  return std::stoll(digits);
}

std::vector<CheckpointEntry> list_checkpoints(const fs::path& parent) {
  std::vector<CheckpointEntry> out;
  std::error_code ec;
  if (!fs::is_directory(parent, ec)) return out;
  for (const auto& e : fs::directory_iterator(parent, ec)) {
    const auto step = checkpoint_step(e.path().filename().string());
    if (step && e.is_directory()) out.push_back({*step, e.path()});
  }
  if (ec)
    throw Error("cannot list checkpoint folder " + parent.string() + ": " + ec.message() + ".");
  std::sort(out.begin(), out.end(), [](const CheckpointEntry& a, const CheckpointEntry& b) {
    return a.step != b.step ? a.step < b.step : a.path < b.path;  // step-1.. and step-0001.. tie
  });
  return out;
}

std::optional<CheckpointEntry> latest_checkpoint(const fs::path& parent) {
  auto all = list_checkpoints(parent);
  if (all.empty()) return std::nullopt;
  return all.back();
}

std::vector<fs::path> prune_checkpoints(const fs::path& parent, size_t keep, const fs::path& protect) {
  auto all = list_checkpoints(parent);
  std::vector<fs::path> removed;
  // The protected one counts among the kept but is never a candidate (even when its step is not
  // the highest: a resumed run writes below checkpoints it will replace later).
  std::error_code pe;
  const auto is_protected = [&](const CheckpointEntry& c) {
    return !protect.empty() && fs::equivalent(c.path, protect, pe);
  };
  size_t kept_protected = 0;
  for (auto it = all.begin(); it != all.end();)
    if (is_protected(*it)) {
      it = all.erase(it);
      kept_protected = 1;
    } else {
      ++it;
    }
  keep = keep > kept_protected ? keep - kept_protected : 0;
  for (size_t i = 0; i + keep < all.size(); ++i) {
    const fs::path hidden = parent / (".del-" + all[i].path.filename().string() + "-" + pid_str());
    std::error_code ec;
    fs::rename(all[i].path, hidden, ec);
    if (ec)
      throw Error("cannot remove old checkpoint " + all[i].path.string() + ": " + ec.message() +
                  ".");
    fs::remove_all(hidden, ec);
    removed.push_back(all[i].path);
  }
  // Leftovers of crashed writers: .tmp-<name>-<pid>, .old-..., .del-... whose process is gone.
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(parent, ec)) {
    const std::string n = e.path().filename().string();
    if (!(n.rfind(".tmp-", 0) == 0 || n.rfind(".old-", 0) == 0 || n.rfind(".del-", 0) == 0))
      continue;
    const auto dash = n.rfind('-');
    const std::string pid = n.substr(dash + 1);
    if (pid.empty() || pid.size() > 9 ||
        !std::all_of(pid.begin(), pid.end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    // A process id from another container can look dead from here; an hour without a change
    // to the folder makes an unfinished write by a live process unlikely.
    const auto age = fs::file_time_type::clock::now() - e.last_write_time(ec);
    const pid_t p = static_cast<pid_t>(std::stol(pid));
    if (!ec && age > std::chrono::hours(1) && p != ::getpid() && ::kill(p, 0) != 0 &&
        errno == ESRCH)
      remove_quietly(e.path());
  }
  return removed;
}

}  // namespace magellano::io
