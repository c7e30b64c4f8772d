// A training run's checkpoint folder (checkpoint.dir), owned by one run:
//   run.json         {"format": "magellano-run-1", "run_id", "started", "config_hash"}
//   metrics.jsonl    the run's metrics, one record per step (and one per evaluation)
//   step-NNNNNNNN/   its checkpoints; each trainer_state.json names the run id
// A new run claims a folder only when it holds no checkpoint and no metrics (a folder with just
// a run.json is a run that stopped before it saved anything, and is claimed again); otherwise it
// is refused with one line (continue it with --resume, or choose another checkpoint.dir), so no
// run ever truncates another's metrics or prunes its checkpoints. A resumed run continues in its
// own folder, or claims an unused one under the same id.
// While a run trains it holds an exclusive lock on the folder (flock on the folder itself), so a
// second process training into it is refused instead of interleaving checkpoints.
// On the start of a resume, leftovers of this run are removed: .tmp-step-* folders that a kill
// left during a checkpoint write (those that are empty or whose trainer_state.json names this
// run), and the metrics records past the resumed step (rewritten atomically), so metrics.jsonl
// stays one record per step.
#pragma once
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "magellano/train/trainer_state.hpp"

namespace magellano::train {

class RunFolder {
 public:
  // A new run of `config` (its JSON, for the hash) in `dir` (created if missing).
  static RunFolder start(const std::filesystem::path& dir, const nlohmann::json& config);
  // The run that saved checkpoint `from` (its trainer_state.json is `state`), continued in `dir`
  // at state.step.
  static RunFolder resume(const std::filesystem::path& dir, const std::filesystem::path& from,
                          const TrainerState& state);

  RunFolder(RunFolder&& other) noexcept;
  RunFolder& operator=(RunFolder&&) = delete;
  RunFolder(const RunFolder&) = delete;
  ~RunFolder();  // releases the lock

  const std::filesystem::path& dir() const { return dir_; }
  const std::string& run_id() const { return run_id_; }
  std::filesystem::path metrics_path() const { return dir_ / "metrics.jsonl"; }

 private:
  RunFolder(std::filesystem::path dir, int lock_fd) : dir_(std::move(dir)), lock_fd_(lock_fd) {}
  void claim(const std::string& run_id, const nlohmann::json& config);
  void remove_leftovers() const;
  void trim_metrics(int64_t step) const;

  std::filesystem::path dir_;
  int lock_fd_ = -1;
  std::string run_id_;
};

// Throws Error when `init_from` lies inside `checkpoint_dir`: the run would prune or replace the
// weights it starts from (and a LoRA run needs its base for as long as its adapters exist).
void refuse_init_from_inside(const std::filesystem::path& init_from, const std::filesystem::path& checkpoint_dir);

}  // namespace magellano::train
