// `magellano train` as a real process. A run owns its checkpoint folder: a new run in another
// run's folder, --init-from a checkpoint inside it and a second process in it are refused; a
// resume continues the run with one metrics record per step and the leftovers of a kill
// removed; pruning keeps the checkpoint just written; a relative --init-from is stored absolute.
// A model too large for the device is refused before anything is allocated. Every refusal:
// exit 1, one line on stderr, and every file as it was (hashes before and after).
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <map>

#include "cli.hpp"
#include "folder_snapshot.hpp"
#include "harness.hpp"
#include "temp_dir.hpp"
#include "train_fixture.hpp"
#include "magellano/io/json_file.hpp"

using namespace mgtest;
namespace fs = std::filesystem;

namespace {

// The "step" of every training record (with a "loss") and of every evaluation record; -1 for a
// line that is not a record.
std::pair<std::vector<int64_t>, std::vector<int64_t>> metric_steps(const fs::path& metrics) {
  std::vector<int64_t> train, val;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("step")) train.push_back(-1);
    else (j.contains("val_loss") ? val : train).push_back(j["step"].get<int64_t>());
  }
  return {train, val};
}

std::string run_id_of(const fs::path& json) { return magellano::io::read_json(json)["run_id"].get<std::string>(); }

// A checkpoint folder as a kill during its write leaves it: .tmp-step-<step>-<pid>/ holding the
// trainer state (written first) naming `run_id` and part of the weights; or nothing at all.
fs::path killed_write(const fs::path& run, int64_t step, const std::string& run_id) {
  char name[64];
  std::snprintf(name, sizeof name, ".tmp-step-%08lld-999999", static_cast<long long>(step));
  const fs::path dir = run / name;
  fs::create_directories(dir);
  if (!run_id.empty()) {
    magellano::io::write_json_atomically(dir / "trainer_state.json", {{"run_id", run_id}, {"step", step}});
    std::ofstream(dir / "model.safetensors") << "\x10\x00\x00\x00";
  }
  return dir;
}

}  // namespace

TEST(TrainCli, AnotherRunsFolderIsRefusedAndKeptAsItWas) {
  MG_REQUIRE_CLI();
  TempDir d;
  const TrainFixture f(d.path());
  ASSERT_EQ(f.train({"--set", "train.steps=8"}).exit_code, 0);
  const auto before = snapshot(d.path());
  // A shorter run with keep = 1 used to truncate metrics.jsonl and prune its own final checkpoint.
  const auto r = f.train({"--set", "train.steps=2", "--set", "checkpoint.keep=1"});
  EXPECT_TRUE(fails_with_one_line(r, 1, "holds the checkpoints of run " + run_id_of(f.run / "run.json")));
  EXPECT_TRUE(fails_with_one_line(r, 1, "continue that run with --resume " + (f.run / "step-00000008").string()));
  EXPECT_EQ(difference(before, snapshot(d.path())), "");

  // A run that stopped before its first checkpoint still owns its metrics.
  TempDir e;
  const TrainFixture g(e.path());
  fs::create_directories(g.run);
  std::ofstream(g.run / "metrics.jsonl") << R"({"step": 1, "loss": 4.1})" << "\n";
  const auto before_g = snapshot(e.path());
  EXPECT_TRUE(fails_with_one_line(g.train(), 1, "holds the metrics.jsonl of an earlier run"));
  EXPECT_EQ(difference(before_g, snapshot(e.path())), "");
}

TEST(TrainCli, ResumeContinuesTheRunWithOneRecordPerStepAndNoLeftovers) {
  MG_REQUIRE_CLI();
  TempDir d;
  const TrainFixture f(d.path());
  ASSERT_EQ(f.train({"--set", "train.steps=8"}).exit_code, 0);
  const std::string id = run_id_of(f.run / "run.json");
  EXPECT_EQ(run_id_of(f.run / "step-00000008" / "trainer_state.json"), id);
  // What kills leave: checkpoint writes of this run (one with files, one before its first
  // file), one of another run's process, and a metrics record cut in the middle.
  const fs::path ours = killed_write(f.run, 10, id), empty = killed_write(f.run, 12, "");
  const fs::path foreign = killed_write(f.run, 14, "0123456789abcdef");
  std::ofstream(f.run / "metrics.jsonl", std::ios::app) << R"({"step": 9, "lo)";

  const auto r = run_on_device({"train", "--resume", (f.run / "step-00000004").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(fs::exists(ours));
  EXPECT_FALSE(fs::exists(empty));
  EXPECT_TRUE(fs::exists(foreign));
  const auto [train, val] = metric_steps(f.run / "metrics.jsonl");
  EXPECT_EQ(train, (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(val, (std::vector<int64_t>{8}));
  EXPECT_EQ(run_id_of(f.run / "run.json"), id);
  EXPECT_EQ(run_id_of(f.run / "step-00000008" / "trainer_state.json"), id);
}

TEST(TrainCli, PruningKeepsTheCheckpointJustWritten) {
  MG_REQUIRE_CLI();
  TempDir d;
  const TrainFixture f(d.path());
  ASSERT_EQ(f.train({"--set", "train.steps=6"}).exit_code, 0);  // step-2, 4, 6
  // Back to step 2, three steps with one checkpoint kept: the new step-3 ranks below step-6.
  const auto r = run_on_device({"train", "--resume", (f.run / "step-00000002").string(), "--set", "train.steps=3",
                                "--set", "checkpoint.keep=1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.output.find("checkpoint: " + (f.run / "step-00000003").string()), std::string::npos) << r.output;
  std::vector<std::string> kept;
  for (const auto& e : fs::directory_iterator(f.run))
    if (e.path().filename().string().rfind("step-", 0) == 0) kept.push_back(e.path().filename().string());
  EXPECT_EQ(kept, (std::vector<std::string>{"step-00000003"}));
}

TEST(TrainCli, InitFromInsideTheRunFolderIsRefused) {
  MG_REQUIRE_CLI();
  TempDir d;
  const TrainFixture f(d.path());
  ASSERT_EQ(f.train().exit_code, 0);
  const auto before = snapshot(d.path());
  const std::string inside = (f.run / "step-00000004").string();
  // Full fine-tuning would prune it; with LoRA it is the base the adapters need later.
  for (const std::vector<std::string>& extra :
       {std::vector<std::string>{}, std::vector<std::string>{"--set", "lora.rank=2"}}) {
    std::vector<std::string> args = {"--init-from", inside};
    args.insert(args.end(), extra.begin(), extra.end());
    EXPECT_TRUE(fails_with_one_line(f.train(args), 1, "--init-from " + inside + " lies inside checkpoint.dir"));
    EXPECT_EQ(difference(before, snapshot(d.path())), "");
  }
}

TEST(TrainCli, ARelativeInitFromIsStoredAbsolute) {
  MG_REQUIRE_CLI();
  TempDir d;
  const TrainFixture f(d.path());
  ASSERT_EQ(f.train().exit_code, 0);
  const fs::path base = f.run / "step-00000004", relative = fs::relative(base, fs::current_path());
  ASSERT_TRUE(relative.is_relative()) << relative;
  const fs::path lora = d.path() / "lora";
  const auto r = f.train({"--init-from", relative.string(), "--set", "lora.rank=2", "--set",
                          "checkpoint.dir=" + lora.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto state = magellano::io::read_json(lora / "step-00000004" / "trainer_state.json");
  const fs::path stored = state["init_from"].get<std::string>();
  EXPECT_TRUE(stored.is_absolute()) << stored;
  EXPECT_TRUE(fs::equivalent(stored, base)) << stored;
}

TEST(TrainCli, ASecondProcessInTheFolderIsRefused) {
  MG_REQUIRE_CLI();
  TempDir d;
  const TrainFixture f(d.path());
  fs::create_directories(f.run);
  const int fd = ::open(f.run.c_str(), O_RDONLY | O_DIRECTORY);  // as a training process holds it
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  const auto before = snapshot(d.path());
  EXPECT_TRUE(fails_with_one_line(f.train(), 1, "another process is training in checkpoint.dir " + f.run.string()));
  EXPECT_EQ(difference(before, snapshot(d.path())), "");
  ::close(fd);
  EXPECT_EQ(f.train().exit_code, 0);
}

// The device's limits are read here; the CLI runs on the same device (device_env()).
TEST(TrainCli, TooLargeForTheDeviceIsRefusedBeforeAnythingIsAllocated) {
  MG_REQUIRE_CLI();
  TempDir d;
  const TrainFixture f(d.path());
  const auto& dev = test_ctx().device();
  const auto refused = [&](const std::vector<std::string>& sets, const std::string& says) {
    std::vector<std::string> args;
    for (const auto& s : sets) args.insert(args.end(), {"--set", s});
    const auto r = f.train(args);
    EXPECT_TRUE(fails_with_one_line(r, 1, says));
    EXPECT_EQ(r.output.find("trainable parameters"), std::string::npos) << "the model was built: " << r.output;
    EXPECT_FALSE(fs::exists(f.run)) << "the run folder was created";
  };
  // Weights, gradients and moments of ~30 G parameters: more than any device's memory.
  refused({"model.dim=32768", "model.layers=(MMME)x2"}, "more than the device's");
  // Logits (B·L, V) of twice the device's memory, in a small model.
  const double tokens = 2.0 * double(dev.global_mem_bytes) / (4.0 * 50257);
  refused({"model.vocab_size=50257", "train.seq_len=65536",
           "train.batch_size=" + std::to_string(int64_t(std::ceil(tokens / 65536)))},
          "Use a smaller train.batch_size or train.seq_len");
  // Logits that fit the memory but not one allocation (where the device allows less in one
  // buffer than in all; the weights take another 13 MB).
  const int64_t batch = int64_t(double(dev.max_alloc_bytes) / (4.0 * 50257 * 65536)) + 1;
  const double logits = double(batch) * 65536 * 50257 * 4;
  if (logits + (100 << 20) < double(dev.global_mem_bytes))
    refused({"model.vocab_size=50257", "train.seq_len=65536", "train.batch_size=" + std::to_string(batch)},
            "more than the largest allocation");
}
