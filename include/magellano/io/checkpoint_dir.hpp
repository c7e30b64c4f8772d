// Checkpoints as directories, written atomically, and the list of those a run has saved.
//
// Layout under a run's checkpoint folder <parent>:
//   step-00000100/            a complete checkpoint (its files are whatever the writer put there)
//   step-00000200/
//   .tmp-step-00000300-4711/  being written by process 4711 (or left by a crash): ignored
// A checkpoint is written into .tmp-<name>-<pid>; every file and folder in it is fsync'd, then
// it is renamed to <name> and <parent> is fsync'd. So <name> either does not exist, or is the
// previous complete checkpoint, or is the new complete one: never a partial directory.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace magellano::io {

// A checkpoint directory under construction. Destroying it without commit() removes the
// temporary directory and leaves <parent>/<name> as it was.
class CheckpointDir {
 public:
  // Creates <parent> if needed and an empty <parent>/.tmp-<name>-<pid> (a stale one of that
  // name, left by an earlier failure, is removed first).
  CheckpointDir(std::filesystem::path parent, std::string name);
  ~CheckpointDir();
  CheckpointDir(const CheckpointDir&) = delete;
  CheckpointDir& operator=(const CheckpointDir&) = delete;

  // The temporary directory: write the checkpoint's files here.
  const std::filesystem::path& dir() const { return temp_; }
  // dir() / relative
  std::filesystem::path file(const std::string& relative) const { return temp_ / relative; }
  // Where the checkpoint will be: <parent>/<name>.
  const std::filesystem::path& final_dir() const { return final_; }

  // fsyncs the contents, then renames the directory to final_dir(). An existing directory of
  // that name is swapped out atomically (renameat2 RENAME_EXCHANGE) and then deleted; where the
  // file system cannot swap, it is first moved aside to .old-<name>-<pid>. Returns final_dir().
  const std::filesystem::path& commit();

 private:
  std::filesystem::path parent_, final_, temp_;
  bool committed_ = false;
};

// Writes <parent>/<name> in one call: write(dir) creates the files inside dir. If write throws,
// <parent>/<name> is left as it was, the temporary directory is removed and the exception
// propagates. Returns the final path.
std::filesystem::path write_checkpoint_dir(
    const std::filesystem::path& parent, const std::string& name,
    const std::function<void(const std::filesystem::path& dir)>& write);

// Throws Error "<command>: the output <out> already exists ..." when anything (a file, a folder,
// a link) is at `out`: commands that write a new checkpoint or file never replace one.
void refuse_existing_output(const std::filesystem::path& out, const std::string& command);

// "step-00000042" (at least 8 digits; more for steps >= 10^8). Throws for a negative step.
std::string checkpoint_name(int64_t step);
// 42 for "step-00000042"; nullopt for any other name (temp dirs, fewer than 8 digits, ...).
std::optional<int64_t> checkpoint_step(const std::string& dir_name);

struct CheckpointEntry {
  int64_t step;
  std::filesystem::path path;
};

// The complete checkpoints in <parent> (directories named step-<8+ digits>), oldest first.
// Empty when <parent> does not exist.
std::vector<CheckpointEntry> list_checkpoints(const std::filesystem::path& parent);
// The newest complete checkpoint, if any.
std::optional<CheckpointEntry> latest_checkpoint(const std::filesystem::path& parent);
// Deletes all but the newest `keep` checkpoints (each is renamed to a hidden name before it is
// deleted, so an interrupted prune never leaves a partial checkpoint under a step name); the
// checkpoint `protect` (e.g. the one just written) is never deleted and counts among the kept.
// Also deletes hidden leftovers (.tmp-, .old-, .del-) of processes that no longer run, once
// untouched for an hour. Returns the deleted checkpoints' paths.
std::vector<std::filesystem::path> prune_checkpoints(const std::filesystem::path& parent, size_t keep,
                                                     const std::filesystem::path& protect = {});

}  // namespace magellano::io
