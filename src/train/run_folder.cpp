#include "magellano/train/run_folder.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <random>
#include <sstream>

#include "magellano/io/atomic_file.hpp"
#include "magellano/io/checkpoint_dir.hpp"
#include "magellano/io/json_file.hpp"
#include "magellano/runtime/error.hpp"
#include "magellano/runtime/input_file.hpp"

namespace magellano::train {
namespace fs = std::filesystem;

namespace {

constexpr const char* kFormat = "magellano-run-1";

std::string new_run_id() {
  std::random_device rd;
  const uint64_t v = (uint64_t(rd()) << 32) ^ rd();
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// FNV-1a, 64 bits, as 16 hex digits: tells configs apart in run.json (not a security hash).
std::string fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// The run id recorded in a run.json or trainer_state.json; "" when there is none (written
// before run ids existed, or not readable).
std::string run_id_in(const fs::path& json_file) {
  std::error_code ec;
  if (!fs::is_regular_file(json_file, ec)) return "";
  try {
    const nlohmann::json j = io::read_json(json_file);
    if (j.is_object() && j.contains("run_id") && j["run_id"].is_string()) return j["run_id"].get<std::string>();
  } catch (const std::exception&) {
  }
  return "";
}

// "run 3f2a..., started 2025-01-02T03:04:05Z" or "an earlier run" (no readable run.json).
std::string describe_run(const fs::path& dir) {
  const std::string id = run_id_in(dir / "run.json");
  if (id.empty()) return "an earlier run";
  std::string started;
  try {
    started = io::read_json(dir / "run.json").value("started", "");
  } catch (const std::exception&) {
  }
  return "run " + id + (started.empty() ? "" : ", started " + started);
}

bool has_metrics(const fs::path& dir) {
  std::error_code ec;
  const auto size = fs::file_size(dir / "metrics.jsonl", ec);
  return !ec && size > 0;
}

// Locks dir for this process (released when the descriptor closes).
int lock_folder(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir))
    throw Error("train: cannot create checkpoint.dir " + dir.string() + (ec ? ": " + ec.message() : "") +
                ". Check the path and its permissions.");
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw Error("train: cannot open checkpoint.dir " + dir.string() + ": " + std::strerror(errno) + ".");
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK)
      throw Error("train: another process is training in checkpoint.dir " + dir.string() +
                  " (it holds the folder's lock); wait for it to finish, or choose another checkpoint.dir.");
    // File systems without flock (some network ones): go on unlocked rather than refuse.
    return -1;
  }
  return fd;
}

// The refusal of a folder that holds another run's data.
[[noreturn]] void refuse_foreign(const fs::path& dir, const std::string& why) {
  const auto latest = io::latest_checkpoint(dir);
  std::string what = latest ? "the checkpoints" : "the metrics.jsonl";
  throw Error("train: checkpoint.dir " + dir.string() + " holds " + what + " of " + describe_run(dir) + why +
              (latest ? "; continue that run with --resume " + latest->path.string() + ", or set"
                      : " (it saved no checkpoint; remove the folder if that run is not needed); or set") +
              " another checkpoint.dir (--set checkpoint.dir=DIR). Nothing was changed.");
}

// ".tmp-step-00000300-4711" -> true (CheckpointDir's temporary name for step-00000300).
bool is_checkpoint_temp(const std::string& name) {
  constexpr std::string_view prefix = ".tmp-";
  if (name.rfind(prefix, 0) != 0) return false;
  const auto dash = name.rfind('-');
  if (dash == std::string::npos || dash <= prefix.size()) return false;
  const std::string pid = name.substr(dash + 1);
  return !pid.empty() && std::all_of(pid.begin(), pid.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
         io::checkpoint_step(name.substr(prefix.size(), dash - prefix.size())).has_value();
}

}  // namespace

RunFolder::RunFolder(RunFolder&& o) noexcept
    : dir_(std::move(o.dir_)), lock_fd_(o.lock_fd_), run_id_(std::move(o.run_id_)) {
  o.lock_fd_ = -1;
}

RunFolder::~RunFolder() {
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

RunFolder RunFolder::start(const fs::path& dir, const nlohmann::json& config) {
  RunFolder f(dir, lock_folder(dir));
  if (io::latest_checkpoint(dir) || has_metrics(dir)) refuse_foreign(dir, "");
  f.claim(new_run_id(), config);
  return f;
}

RunFolder RunFolder::resume(const fs::path& dir, const fs::path& from, const TrainerState& state) {
  RunFolder f(dir, lock_folder(dir));
  const std::string& resumed = state.run_id;
  std::error_code ec;
  const fs::path checkpoint = fs::weakly_canonical(from, ec);  // "ck/step-00000004/" too
  const bool from_inside = !ec && fs::equivalent(checkpoint.parent_path(), dir, ec);
  const std::string owner = run_id_in(dir / "run.json");
  if (!owner.empty()) {
    // The folder's own run, or a checkpoint of it saved before run ids existed.
    if (owner != resumed && !(resumed.empty() && from_inside))
      throw Error("train: checkpoint.dir " + dir.string() + " belongs to " + describe_run(dir) + ", but " +
                  from.string() + " was saved by " + (resumed.empty() ? "another run" : "run " + resumed) +
                  "; resume into that run's own folder or a new one (--set checkpoint.dir=DIR). Nothing was changed.");
    f.run_id_ = owner;
  } else {
    if (!from_inside && (io::latest_checkpoint(dir) || has_metrics(dir)))
      refuse_foreign(dir, ", not of the run that saved " + from.string());
    f.claim(resumed.empty() ? new_run_id() : resumed, nlohmann::json());
  }
  f.remove_leftovers();
  f.trim_metrics(state.step);
  return f;
}

void RunFolder::claim(const std::string& run_id, const nlohmann::json& config) {
  run_id_ = run_id;
  nlohmann::json j{{"format", kFormat}, {"run_id", run_id}, {"started", utc_now()}};
  if (!config.is_null()) j["config_hash"] = fnv1a(config.dump());
  io::write_json_atomically(dir_ / "run.json", j);
}

void RunFolder::remove_leftovers() const {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const std::string name = e.path().filename().string();
    if (!is_checkpoint_temp(name) || !e.is_directory()) continue;
    // Ours: empty (killed before its first file), or trainer_state.json (written first) names
    // this run. No other process writes here while we hold the lock.
    if (fs::is_empty(e.path(), ec) || run_id_in(e.path() / "trainer_state.json") == run_id_) {
      std::error_code rm;
      fs::remove_all(e.path(), rm);
    }
  }
}

void RunFolder::trim_metrics(int64_t step) const {
  const fs::path path = metrics_path();
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return;
  const std::string text = read_whole_file(path, "metrics file");
  std::string kept;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    // A record past the resumed step is replayed by this run; a cut line was being written by a kill.
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.contains("step") && j["step"].is_number_integer() && j["step"].get<int64_t>() <= step)
      kept += line + "\n";
  }
  if (kept != text) io::write_file_atomically(path, kept);
}

void refuse_init_from_inside(const fs::path& init_from, const fs::path& checkpoint_dir) {
  std::error_code ec;
  if (!fs::exists(checkpoint_dir, ec)) return;
  const fs::path from = fs::weakly_canonical(init_from, ec), dir = fs::weakly_canonical(checkpoint_dir, ec);
  if (ec) return;
  const auto [d, f] = std::mismatch(dir.begin(), dir.end(), from.begin(), from.end());
  if (d != dir.end() && !(d->empty() && std::next(d) == dir.end())) return;  // dir is not a prefix of from
  throw Error("train: --init-from " + init_from.string() + " lies inside checkpoint.dir " + checkpoint_dir.string() +
              ", whose checkpoints this run prunes and replaces (and a LoRA run needs its base for as long as "
              "its adapters exist). Copy that checkpoint out of the folder first, or set another checkpoint.dir.");
}

}  // namespace magellano::train
