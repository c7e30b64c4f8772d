// Data-parallel training with real ranks: `mpirun -np 2 --oversubscribe magellano train` on the
// tests' device (PoCL here), as root with Open MPI's allow flags. Each run is a few seconds.
//   - 2 ranks x batch 2 follow 1 rank x batch 4 step by step (same windows, gradient = mean over
//     the same 4 windows), with the fp32 exchange and, more loosely, the bf16 one; weights
//     identical across ranks (the checkpoint hash check passes).
//   - a resume on 2 ranks rewrites the same checkpoint bit for bit (fp32; fp16 with loss scaling);
//     a resume on 1 rank of twice the batch continues the same run.
//   - ZeRO stage 1 equals the unsharded run bit for bit, and its checkpoints resume bit-exactly
//     on 2 ranks with or without ZeRO, and on 1 rank as the same run.
//   - ranks started from different weights stop at the first checkpoint with a message naming
//     the rank, and write no checkpoint for that step.
//   - a rank killed mid-run ends the whole run (mpirun stops the other) within seconds, and every
//     checkpoint left is complete (eval reads the newest); a stopped (hung) rank ends it after
//     MAGELLANO_DIST_TIMEOUT seconds with a message from the rank that waited.
// Skipped when mpirun is missing or the library was built without MPI, and in the sanitizer build
// (scripts/sanitize.sh): Open MPI leaves allocations of its plugins, unloaded at MPI_Finalize, that
// LeakSanitizer reports under "<unknown module>" frames no suppression can name.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <sys/wait.h>

#include "cli.hpp"
#include "harness.hpp"
#include "temp_dir.hpp"
#include "train_fixture.hpp"
#include "magellano/dist/launch.hpp"

using namespace mgtest;
namespace fs = std::filesystem;

namespace {

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// `mpirun <apps>` where each app is {ranks, magellano arguments}; stdout and stderr together.
CliRun mpirun(const std::vector<std::pair<int, std::vector<std::string>>>& apps) {
  std::string cmd = "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader ";
  for (const auto& e : device_env()) cmd += quote(e) + " ";
  cmd += "mpirun --oversubscribe";
  for (size_t i = 0; i < apps.size(); ++i) {
    cmd += (i ? " :" : "") + std::string(" -np ") + std::to_string(apps[i].first) + " " + quote(cli_path());
    for (const auto& a : apps[i].second) cmd += " " + quote(a);
  }
  cmd += " 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (!pipe) return {-1, "popen failed", ""};
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) out.append(buf, n);
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out, ""};
}

bool have_mpirun() { return std::system("command -v mpirun >/dev/null 2>&1") == 0; }

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

#define MG_REQUIRE_MPI()                                                                       \
  do {                                                                                         \
    MG_REQUIRE_CLI();                                                                          \
    if (!magellano::dist::built_with_mpi() || !have_mpirun())                                  \
      GTEST_SKIP() << "no MPI in this build or no mpirun (scripts/setup.sh installs Open MPI)"; \
    if (kSanitized) GTEST_SKIP() << "Open MPI's own leaks at exit cannot be suppressed under LeakSanitizer"; \
  } while (0)

std::vector<std::string> train_args(const TrainFixture& f, const fs::path& run, std::vector<std::string> sets) {
  std::vector<std::string> a = {"train", "--config", f.config.string(), "--set", "checkpoint.dir=" + run.string()};
  for (auto& s : sets) a.insert(a.end(), {"--set", s});
  return a;
}

// The training losses of metrics.jsonl, in step order.
std::vector<double> losses(const fs::path& metrics) {
  std::vector<double> out;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.contains("loss")) out.push_back(j["loss"].get<double>());
  }
  return out;
}

// The last evaluation record of metrics.jsonl.
nlohmann::json last_eval(const fs::path& metrics) {
  nlohmann::json last;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.contains("val_loss")) last = j;
  }
  return last;
}

// The last record of metrics.jsonl (the last log interval's).
nlohmann::json last_record(const fs::path& metrics) {
  nlohmann::json last;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.contains("loss")) last = j;
  }
  return last;
}

// N of the "trainable parameters: N of M" line a training run prints (-1 if absent).
long long trained_parameters(const std::string& output) {
  const std::string key = "trainable parameters: ";
  const size_t at = output.find(key);
  return at == std::string::npos ? -1 : std::atoll(output.c_str() + at + key.size());
}

std::string bytes_of(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST(DataParallel, TwoRanksOfBatchTwoFollowOneRankOfBatchFour) {
  MG_REQUIRE_MPI();
  TempDir d;
  const TrainFixture f(d.path());
  // Dense (no MoE): the load-balancing loss is per rank's tokens, not a mean of per-token terms.
  const std::vector<std::string> common = {"model.layers=MF", "train.steps=20", "checkpoint.every=10",
                                           "train.grad_accum=2", "train.grad_clip=1.0"};
  auto one = common, two = common;
  one.push_back("train.batch_size=4");
  two.push_back("train.batch_size=2");
  const CliRun r1 = run_on_device(train_args(f, d.path() / "one", one));
  ASSERT_EQ(r1.exit_code, 0) << r1.output << r1.err;
  const CliRun r2 = mpirun({{2, train_args(f, d.path() / "two", two)}});
  ASSERT_EQ(r2.exit_code, 0) << r2.output;
  EXPECT_NE(r2.output.find("data parallel: 2 ranks over MPI"), std::string::npos) << r2.output;
  const auto a = losses(d.path() / "one" / "metrics.jsonl"), b = losses(d.path() / "two" / "metrics.jsonl");
  ASSERT_EQ(a.size(), 20u);
  ASSERT_EQ(b.size(), 20u);
  // Tolerance 1e-5 relative (about 80 fp32 ulps): the same windows and the same mean gradient,
  // summed in another order (each rank's GEMMs over 2 windows, then the two ranks' sums, against
  // one sum over 4), so the weights differ by fp32 rounding; measured: at most 1.3e-7 over the
  // 20 steps on PoCL. Ranks reading the wrong rows (both rank 0's) differ by 2.5e-3 at step 1.
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(b[i], a[i], 1e-5 * std::abs(a[i])) << "step " << i + 1;
  EXPECT_LT(a.back(), a.front() - 0.1);  // it learned: the comparison is not of constants
  // The final evaluation, split across the 2 ranks: the same positions, the same loss up to
  // rounding (1e-5 as above).
  const auto ea = last_eval(d.path() / "one" / "metrics.jsonl"), eb = last_eval(d.path() / "two" / "metrics.jsonl");
  ASSERT_TRUE(ea.contains("val_tokens") && eb.contains("val_tokens")) << ea << eb;
  EXPECT_EQ(eb["val_tokens"], ea["val_tokens"]);
  EXPECT_NEAR(eb["val_loss"].get<double>(), ea["val_loss"].get<double>(), 1e-5 * ea["val_loss"].get<double>());

  // The bf16 exchange: gradients rounded to 8 significant bits before and during the sum.
  // Tolerance 1e-3 relative: measured at most 1.7e-4 from the fp32 exchange over these 20 steps
  // on PoCL; it must also differ from the fp32 exchange by more than 1e-6 (the option acts).
  two.push_back("train.allreduce_bf16=true");
  const CliRun r3 = mpirun({{2, train_args(f, d.path() / "bf16", two)}});
  ASSERT_EQ(r3.exit_code, 0) << r3.output;
  const auto c = losses(d.path() / "bf16" / "metrics.jsonl");
  ASSERT_EQ(c.size(), 20u);
  double most = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_NEAR(c[i], a[i], 1e-3 * std::abs(a[i])) << "step " << i + 1;
    most = std::max(most, std::abs(c[i] - b[i]) / std::abs(b[i]));
  }
  if (std::getenv("MG_DP_PRINT")) std::printf("bf16 vs fp32 exchange: at most %.3g relative\n", most);
  EXPECT_GT(most, 1e-6);
}

// Each setup: fp32, and fp16 weights and gradients with loss scaling (f16 buckets; the scaler's
// skip decided by all ranks).
class DataParallelResume : public ::testing::TestWithParam<std::vector<std::string>> {};

TEST_P(DataParallelResume, OnTwoRanksIsBitExactAndOnOneRankContinuesTheSameRun) {
  MG_REQUIRE_MPI();
  TempDir d;
  const TrainFixture f(d.path());
  const fs::path run = d.path() / "run2";
  auto sets = GetParam();
  sets.push_back("train.steps=4");
  const CliRun full = mpirun({{2, train_args(f, run, sets)}});
  ASSERT_EQ(full.exit_code, 0) << full.output;
  const fs::path last = run / "step-00000004";
  const std::string model = bytes_of(last / "model.safetensors"), moments = bytes_of(last / "optimizer.safetensors");
  ASSERT_FALSE(model.empty());
  ASSERT_FALSE(moments.empty());
  const auto state = nlohmann::json::parse(bytes_of(last / "trainer_state.json"));
  EXPECT_EQ(state["data_parallel"], (nlohmann::json{{"ranks", 2}, {"batch_per_rank", 2}}));
  EXPECT_EQ(state["tokens"], 4 * 2 * 16 * 2);  // steps x batch x seq_len x ranks
  const auto two = losses(run / "metrics.jsonl");
  ASSERT_EQ(two.size(), 4u);

  // Another number of ranks: 1 rank of batch 4 reads the same windows from the same stream
  // position, with the same weights, moments and loss scale; its losses follow the 2 ranks'
  // within the tolerance of TwoRanksOfBatchTwoFollowOneRankOfBatchFour.
  const CliRun one = run_on_device({"train", "--resume", (run / "step-00000002").string(), "--set",
                                    "train.batch_size=4", "--set", "checkpoint.dir=" + (d.path() / "run1").string()});
  ASSERT_EQ(one.exit_code, 0) << one.output << one.err;
  EXPECT_NE(one.output.find("the checkpoint was written by 2 rank(s), this run has 1"), std::string::npos) << one.output;
  const auto cont = losses(d.path() / "run1" / "metrics.jsonl");
  ASSERT_EQ(cont.size(), 2u);
  for (size_t i = 0; i < 2; ++i) EXPECT_NEAR(cont[i], two[i + 2], 1e-5 * std::abs(two[i + 2])) << "step " << i + 3;

  fs::remove_all(last);
  const CliRun resumed = mpirun({{2, {"train", "--resume", (run / "step-00000002").string()}}});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_EQ(bytes_of(last / "model.safetensors"), model);
  EXPECT_EQ(bytes_of(last / "optimizer.safetensors"), moments);
  EXPECT_EQ(losses(run / "metrics.jsonl"), two);
}

INSTANTIATE_TEST_SUITE_P(DataParallel, DataParallelResume,
                         ::testing::Values(std::vector<std::string>{},
                                           std::vector<std::string>{"train.param_dtype=fp16", "train.loss_scaling=true"}));

// The exchange overlapped with the backward (train.allreduce_overlap): buckets of 1,000 values
// (the fixture's model holds ~10k trained parameters, so several buckets) start as backward
// passes their parameters' first nodes; against the same buckets exchanged after the backward,
// losses, weights and moments are compared bit for bit. The metrics must show buckets started
// before the backward's last node (the overlap happened). The buckets' reads are non-blocking
// (their sums start once the reads' events complete), so this also compares reads issued while
// backward's kernels are still queued against reads after clFinish. Setups: fp32; fp16 weights
// with loss scaling; gradient checkpointing (its segments' parameters wait for the end) with
// ZeRO stage 1; ZeRO stage 1 with the bf16 exchange (the buckets' reduce-scatters start during
// backward).
class DataParallelOverlap : public ::testing::TestWithParam<std::vector<std::string>> {};

TEST_P(DataParallelOverlap, StartsBucketsDuringBackwardWithTheSameSums) {
  MG_REQUIRE_MPI();
  TempDir d;
  const TrainFixture f(d.path());
  auto sets = GetParam();
  sets.insert(sets.end(), {"train.steps=4", "train.allreduce_bucket=1000", "train.log_every=1"});
  const CliRun after = mpirun({{2, train_args(f, d.path() / "after", sets)}});
  ASSERT_EQ(after.exit_code, 0) << after.output;
  sets.push_back("train.allreduce_overlap=true");
  const CliRun during = mpirun({{2, train_args(f, d.path() / "during", sets)}});
  ASSERT_EQ(during.exit_code, 0) << during.output;
  for (const char* file : {"model.safetensors", "optimizer.safetensors"}) {
    const std::string a = bytes_of(d.path() / "after" / "step-00000004" / file);
    ASSERT_FALSE(a.empty()) << file;
    EXPECT_EQ(bytes_of(d.path() / "during" / "step-00000004" / file), a) << file;
  }
  const auto la = losses(d.path() / "after" / "metrics.jsonl");
  ASSERT_EQ(la.size(), 4u);
  EXPECT_EQ(losses(d.path() / "during" / "metrics.jsonl"), la);
  int64_t early = -1;
  std::ifstream in(d.path() / "during" / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.contains("allreduce_early_buckets")) early = j["allreduce_early_buckets"].get<int64_t>();
  }
  if (std::getenv("MG_DP_PRINT")) std::printf("buckets started during backward in 4 steps: %lld\n", (long long)early);
  // Checkpointed segments: their parameters (all but the tied embedding / head here) are
  // exchanged after the backward, so only the bit-identity is checked.
  const bool checkpointing = std::find(sets.begin(), sets.end(), "train.gradient_checkpointing=1") != sets.end();
  if (!checkpointing) EXPECT_GT(early, 0);
  EXPECT_GE(early, 0);  // the record is there
}

INSTANTIATE_TEST_SUITE_P(DataParallel, DataParallelOverlap,
                         ::testing::Values(std::vector<std::string>{},
                                           std::vector<std::string>{"train.param_dtype=fp16", "train.loss_scaling=true"},
                                           std::vector<std::string>{"train.gradient_checkpointing=1", "train.zero_stage=1"},
                                           std::vector<std::string>{"train.zero_stage=1", "train.allreduce_bf16=true"}));

// ZeRO stage 1 (train.zero_stage 1): each rank updates half of the moments and broadcasts its
// parameters; the arithmetic per element is the unsharded one, so against the unsharded 2-rank
// run the losses, the weights and the (gathered) moments of the checkpoints are compared bit
// for bit, no tolerance. Then its step-2 checkpoint (the unsharded format) resumes: with ZeRO
// on 2 ranks, rewriting step 4 bit for bit; without ZeRO on 2 ranks, the same; and on 1 rank of
// batch 4, the same run within the 1e-5 of TwoRanksOfBatchTwoFollowOneRankOfBatchFour. Setups:
// fp32 weights and moments; fp16 weights with stochastic rounding, loss scaling and int8
// moments; fp32 with the moments paged in host memory; the bf16 exchange.
// The gradient exchange of ZeRO is a reduce-scatter: rank 0's bytes sent for it
// (grad_exchange_bytes in metrics.jsonl, counted in the collective layer) are about half of the
// unsharded all-reduce's (its share's cut sits on a 256-element boundary, so not exactly half:
// within [0.4, 0.6]); the all-reduce's must equal 4 (or 2 with bf16) bytes per trained value per
// step (2 ranks: each value crosses once), which the test checks from the parameter count.
class DataParallelZero : public ::testing::TestWithParam<std::vector<std::string>> {};

TEST_P(DataParallelZero, StageOneEqualsTheUnshardedRunAndItsCheckpointsResumeAnywhere) {
  MG_REQUIRE_MPI();
  TempDir d;
  const TrainFixture f(d.path());
  auto sets = GetParam();
  sets.push_back("train.steps=4");
  const CliRun plain = mpirun({{2, train_args(f, d.path() / "plain", sets)}});
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  auto zero_sets = sets;
  zero_sets.push_back("train.zero_stage=1");
  const fs::path run = d.path() / "zero";
  const CliRun zero = mpirun({{2, train_args(f, run, zero_sets)}});
  ASSERT_EQ(zero.exit_code, 0) << zero.output;
  EXPECT_NE(zero.output.find("ZeRO stage 1: each rank keeps and updates 1/2 of the AdamW moments"), std::string::npos)
      << zero.output;
  const fs::path last = run / "step-00000004";
  const std::string model = bytes_of(last / "model.safetensors"), moments = bytes_of(last / "optimizer.safetensors");
  ASSERT_FALSE(moments.empty());
  EXPECT_EQ(model, bytes_of(d.path() / "plain" / "step-00000004" / "model.safetensors"));
  EXPECT_EQ(moments, bytes_of(d.path() / "plain" / "step-00000004" / "optimizer.safetensors"));
  const auto two = losses(run / "metrics.jsonl");
  ASSERT_EQ(two.size(), 4u);
  EXPECT_EQ(two, losses(d.path() / "plain" / "metrics.jsonl"));
  const nlohmann::json plain_rec = last_record(d.path() / "plain" / "metrics.jsonl"),
                       zero_rec = last_record(run / "metrics.jsonl");
  ASSERT_TRUE(plain_rec.contains("grad_exchange_bytes") && zero_rec.contains("grad_exchange_bytes")) << zero_rec;
  const double all_reduce = plain_rec["grad_exchange_bytes"].get<double>(),
               scatter = zero_rec["grad_exchange_bytes"].get<double>();
  const bool bf16 = std::find(sets.begin(), sets.end(), "train.allreduce_bf16=true") != sets.end();
  EXPECT_EQ(all_reduce, 4.0 * double(trained_parameters(plain.output)) * (bf16 ? 2 : 4))
      << "4 steps of every trained value once";
  if (std::getenv("MG_DP_PRINT"))
    std::printf("bytes sent by rank 0 in 4 steps: all-reduce %.0f, reduce-scatter %.0f (%.3f), parameters %.0f\n",
                all_reduce, scatter, scatter / all_reduce, zero_rec["zero_share_bytes"].get<double>());
  EXPECT_GT(scatter, 0.4 * all_reduce);
  EXPECT_LT(scatter, 0.6 * all_reduce);

  // The same number of ranks, with ZeRO and without: bit for bit.
  fs::remove_all(last);
  const CliRun resumed = mpirun({{2, {"train", "--resume", (run / "step-00000002").string()}}});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_EQ(bytes_of(last / "model.safetensors"), model);
  EXPECT_EQ(bytes_of(last / "optimizer.safetensors"), moments);
  const fs::path off = d.path() / "zero_off";
  const CliRun unsharded = mpirun({{2, {"train", "--resume", (run / "step-00000002").string(), "--set",
                                        "train.zero_stage=0", "--set", "checkpoint.dir=" + off.string()}}});
  ASSERT_EQ(unsharded.exit_code, 0) << unsharded.output;
  EXPECT_EQ(bytes_of(off / "step-00000004" / "model.safetensors"), model);
  EXPECT_EQ(bytes_of(off / "step-00000004" / "optimizer.safetensors"), moments);

  // One rank of batch 4 (ZeRO has no effect alone): the same run up to summation order.
  const CliRun one = run_on_device({"train", "--resume", (run / "step-00000002").string(), "--set",
                                    "train.batch_size=4", "--set", "checkpoint.dir=" + (d.path() / "one").string()});
  ASSERT_EQ(one.exit_code, 0) << one.output << one.err;
  const auto cont = losses(d.path() / "one" / "metrics.jsonl");
  ASSERT_EQ(cont.size(), 2u);
  for (size_t i = 0; i < 2; ++i) EXPECT_NEAR(cont[i], two[i + 2], 1e-5 * std::abs(two[i + 2])) << "step " << i + 3;
}

INSTANTIATE_TEST_SUITE_P(DataParallel, DataParallelZero,
                         ::testing::Values(std::vector<std::string>{},
                                           std::vector<std::string>{"train.param_dtype=fp16", "train.loss_scaling=true",
                                                                    "train.optimizer_states=int8"},
                                           std::vector<std::string>{"train.optimizer_offload=host"},
                                           std::vector<std::string>{"train.allreduce_bf16=true"}));

TEST(DataParallel, RanksWithDifferentWeightsAreStoppedAtTheFirstCheckpoint) {
  MG_REQUIRE_MPI();
  TempDir d;
  const TrainFixture f(d.path());
  ASSERT_EQ(run_on_device(train_args(f, d.path() / "base", {"train.steps=1"})).exit_code, 0);
  const fs::path run = d.path() / "run";
  // Rank 1 starts from other weights (a launch mistake that the checkpoint check must catch).
  auto rank1 = train_args(f, run, {});
  rank1.insert(rank1.end(), {"--init-from", (d.path() / "base" / "step-00000001").string()});
  const CliRun r = mpirun({{1, train_args(f, run, {})}, {1, rank1}});
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("error: data-parallel ranks diverged at step 2: the weights of rank(s) 1 differ from rank 0's"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(run / "step-00000002"));
}

// Trains on 2 ranks in the background (100,000 steps, a checkpoint every 2) and, once step 4's
// checkpoint exists, sends `signal` to one rank; waits at most 30 s for mpirun to end. The
// script's output ends with "mpirun exit <code>" (or "still running"), then mpirun's log.
CliRun signal_a_rank(const TrainFixture& f, const fs::path& dir, const fs::path& run, const std::string& signal,
                     const std::string& env = "") {
  std::string cmd = "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader " + env + " ";
  for (const auto& e : device_env()) cmd += quote(e) + " ";
  cmd += "mpirun --oversubscribe -np 2 " + quote(cli_path());
  for (const auto& a : train_args(f, run, {"train.steps=100000", "checkpoint.every=2", "checkpoint.keep=2"}))
    cmd += " " + quote(a);
  const std::string log = quote((dir / "log").string());
  const std::string script = cmd + " >" + log + " 2>&1 & mp=$!\n" +
                             "for i in $(seq 600); do [ -d " + quote((run / "step-00000004").string()) +
                             " ] && break; sleep 0.05; done\n"
                             "kill -" + signal + " $(pgrep -P $mp | tail -n 1)\n"
                             "for i in $(seq 300); do kill -0 $mp 2>/dev/null || break; sleep 0.1; done\n"
                             "if kill -0 $mp 2>/dev/null; then pkill -9 -P $mp; kill -9 $mp; echo still running; exit 3; fi\n"
                             "wait $mp; echo \"mpirun exit $?\"; cat " + log + "\n";
  std::ofstream(dir / "signal.sh") << script;
  FILE* pipe = ::popen(("bash " + quote((dir / "signal.sh").string()) + " 2>&1").c_str(), "r");
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) out.append(buf, n);
  const int status = ::pclose(pipe);
  return CliRun{WIFEXITED(status) ? WEXITSTATUS(status) : -1, out, ""};
}

// Every step-* checkpoint of `run` is complete: eval reads the newest.
void expect_complete_checkpoints(const fs::path& run, const fs::path& val) {
  std::vector<fs::path> steps;
  for (const auto& e : fs::directory_iterator(run))
    if (e.path().filename().string().rfind("step-", 0) == 0) steps.push_back(e.path());
  ASSERT_FALSE(steps.empty());
  std::sort(steps.begin(), steps.end());
  const CliRun ev = run_on_device({"eval", "--checkpoint", steps.back().string(), "--tokens", val.string()});
  EXPECT_EQ(ev.exit_code, 0) << ev.output << ev.err;
}

TEST(DataParallel, AKilledRankEndsTheRunAndTheCheckpointsStayComplete) {
  MG_REQUIRE_MPI();
  TempDir d;
  const TrainFixture f(d.path());
  const CliRun r = signal_a_rank(f, d.path(), d.path() / "run", "9");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("mpirun exit"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("mpirun exit 0"), std::string::npos) << r.output;  // the run failed as a whole
  expect_complete_checkpoints(d.path() / "run", d.path() / "val.tok");
}

TEST(DataParallel, AHungRankEndsTheRunAfterTheTimeout) {
  MG_REQUIRE_MPI();
  TempDir d;
  const TrainFixture f(d.path());
  // SIGSTOP: the rank neither answers nor dies; the other gives up after 3 s.
  const CliRun r = signal_a_rank(f, d.path(), d.path() / "run", "STOP", "MAGELLANO_DIST_TIMEOUT=3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("mpirun exit 0"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(" of 2: no answer from the other ranks within 3 s ("), std::string::npos) << r.output;
  expect_complete_checkpoints(d.path() / "run", d.path() / "val.tok");
}
