// Checkpoint directories (atomic writes, list / latest / prune, leftovers of failures), the JSON
// file helpers, and parsing of Hugging Face Mamba configs.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "harness.hpp"
#include "magellano/io/checkpoint_dir.hpp"
#include "magellano/io/hf_mamba_config.hpp"
#include "magellano/io/json_file.hpp"
#include "magellano/io/safetensors.hpp"

using namespace magellano;
using namespace magellano::io;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

class CheckpointDirs : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("magellano-ckpt-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A small checkpoint: state.json {"step": step, "tag": tag} and a one-tensor safetensors.
  fs::path save(int64_t step, const std::string& tag = "") {
    return write_checkpoint_dir(dir_, checkpoint_name(step), [&](const fs::path& d) {
      write_json_atomically(d / "state.json", json{{"step", step}, {"tag", tag}});
      write_safetensors(d / "model.safetensors", {{"w", StTensor{StDType::U8, {1}, {7}}}});
    });
  }
  std::string tag_of(const fs::path& ckpt) { return read_json(ckpt / "state.json")["tag"]; }
  std::vector<std::string> entries() {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }
  std::vector<int64_t> steps() {
    std::vector<int64_t> out;
    for (const auto& c : list_checkpoints(dir_)) out.push_back(c.step);
    return out;
  }
  fs::path dir_;
};

template <class F>
void expect_error(F&& f, const std::string& fragment) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one containing: " << fragment;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(fragment), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "not one line: " << msg;
  }
}

}  // namespace

TEST(CheckpointNames, FormatAndParse) {
  EXPECT_EQ(checkpoint_name(0), "step-00000000");
  EXPECT_EQ(checkpoint_name(42), "step-00000042");
  EXPECT_EQ(checkpoint_name(123456789), "step-123456789");
  EXPECT_THROW(checkpoint_name(-1), Error);
  EXPECT_EQ(checkpoint_step("step-00000042"), 42);
  EXPECT_EQ(checkpoint_step("step-123456789"), 123456789);
  EXPECT_EQ(checkpoint_step("step-42"), std::nullopt);
  EXPECT_EQ(checkpoint_step("step-0000004x"), std::nullopt);
  EXPECT_EQ(checkpoint_step(".tmp-step-00000042-17"), std::nullopt);
  EXPECT_EQ(checkpoint_step("latest"), std::nullopt);
}

TEST_F(CheckpointDirs, ListLatestPrune) {
  EXPECT_TRUE(list_checkpoints(dir_ / "absent").empty());
  EXPECT_EQ(latest_checkpoint(dir_), std::nullopt);
  for (int64_t s : {100, 5, 20, 100000000}) save(s, "t" + std::to_string(s));
  // Things that are not complete checkpoints are ignored.
  fs::create_directories(dir_ / ".tmp-step-00000300-999999");
  fs::create_directories(dir_ / "step-12");
  fs::create_directories(dir_ / "notes");
  std::ofstream(dir_ / "step-00000400") << "a file, not a directory";

  EXPECT_EQ(steps(), (std::vector<int64_t>{5, 20, 100, 100000000}));
  const auto all = list_checkpoints(dir_);
  EXPECT_EQ(all[0].path, dir_ / "step-00000005");
  EXPECT_EQ(tag_of(all[2].path), "t100");
  EXPECT_EQ(SafetensorsReader::open(all[1].path / "model.safetensors").read("w").bytes,
            std::vector<uint8_t>{7});
  ASSERT_TRUE(latest_checkpoint(dir_));
  EXPECT_EQ(latest_checkpoint(dir_)->step, 100000000);
  EXPECT_EQ(latest_checkpoint(dir_)->path, dir_ / "step-100000000");

  EXPECT_EQ(prune_checkpoints(dir_, 2),
            (std::vector<fs::path>{dir_ / "step-00000005", dir_ / "step-00000020"}));
  EXPECT_EQ(steps(), (std::vector<int64_t>{100, 100000000}));
  EXPECT_TRUE(prune_checkpoints(dir_, 5).empty());
  EXPECT_EQ(prune_checkpoints(dir_, 0).size(), 2u);
  EXPECT_TRUE(steps().empty());
  // Only checkpoints were deleted (the fresh temp dir is not old enough to count as stale).
  EXPECT_EQ(entries(), (std::vector<std::string>{".tmp-step-00000300-999999", "notes",
                                                 "step-00000400", "step-12"}));
}

TEST_F(CheckpointDirs, PruneDeletesStaleLeftoversOfDeadProcesses) {
  save(1);
  const fs::path stale = dir_ / ".tmp-step-00000002-999999999";  // no such process
  const fs::path fresh = dir_ / ".tmp-step-00000003-999999998";
  const fs::path mine = dir_ / (".tmp-step-00000004-" + std::to_string(::getpid()));
  for (const auto& p : {stale, fresh, mine}) fs::create_directories(p / "sub");
  const auto old = fs::file_time_type::clock::now() - std::chrono::hours(2);
  fs::last_write_time(stale, old);
  fs::last_write_time(mine, old);
  prune_checkpoints(dir_, 1);
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(fresh));
  EXPECT_TRUE(fs::exists(mine));
  EXPECT_EQ(steps(), std::vector<int64_t>{1});
}

// A resumed run writes below checkpoints it will replace later: the one just written is kept
// even where its step is not among the newest (and counts among the kept).
TEST_F(CheckpointDirs, PruneNeverDeletesTheProtectedCheckpoint) {
  for (int64_t s : {2, 4, 6}) save(s);
  const fs::path three = save(3);
  EXPECT_EQ(prune_checkpoints(dir_, 2, three).size(), 2u);
  EXPECT_EQ(steps(), (std::vector<int64_t>{3, 6}));
  EXPECT_EQ(prune_checkpoints(dir_, 1, three).size(), 1u);
  EXPECT_EQ(steps(), std::vector<int64_t>{3});
  EXPECT_EQ(prune_checkpoints(dir_, 1).size(), 0u);
}

// merge-adapter and quantize never write over anything.
TEST_F(CheckpointDirs, AnExistingOutputIsRefused) {
  fs::create_directories(dir_ / "folder");
  std::ofstream(dir_ / "file") << "x";
  fs::create_symlink(dir_ / "nowhere", dir_ / "dangling");
  for (const char* name : {"folder", "file", "dangling"})
    expect_error([&] { refuse_existing_output(dir_ / name, "merge-adapter"); },
                 "merge-adapter: the output " + (dir_ / name).string() + " already exists");
  refuse_existing_output(dir_ / "new", "quantize");  // no error
}

TEST_F(CheckpointDirs, FailingWriterLeavesPreviousCheckpointIntact) {
  save(10, "old");
  const auto fail_midway = [&](const std::string& name) {
    write_checkpoint_dir(dir_, name, [](const fs::path& d) {
      write_json_atomically(d / "state.json", json{{"tag", "new"}});
      std::ofstream(d / "half.bin") << "partial";
      throw std::runtime_error("simulated failure while writing");
    });
  };
  EXPECT_THROW(fail_midway(checkpoint_name(10)), std::runtime_error);  // replacing one
  EXPECT_THROW(fail_midway(checkpoint_name(11)), std::runtime_error);  // a new one
  EXPECT_EQ(tag_of(dir_ / "step-00000010"), "old");
  EXPECT_FALSE(fs::exists(dir_ / "step-00000010" / "half.bin"));
  EXPECT_EQ(entries(), std::vector<std::string>{"step-00000010"});  // no temp dir, no step-11
  EXPECT_EQ(latest_checkpoint(dir_)->step, 10);

  // The same with the class: destroyed without commit.
  {
    CheckpointDir c(dir_, checkpoint_name(12));
    std::ofstream(c.file("x")) << "x";
    EXPECT_TRUE(fs::exists(c.dir() / "x"));
    EXPECT_EQ(c.final_dir(), dir_ / "step-00000012");
    EXPECT_FALSE(fs::exists(c.final_dir()));
  }
  EXPECT_EQ(entries(), std::vector<std::string>{"step-00000010"});
}

TEST_F(CheckpointDirs, StaleTempDirIsReplacedNotMerged) {
  // A crashed earlier process with our pid left a partial temp dir for the same name.
  const fs::path stale = dir_ / (".tmp-step-00000003-" + std::to_string(::getpid()));
  fs::create_directories(stale / "deep");
  std::ofstream(stale / "junk.bin") << "junk";
  EXPECT_TRUE(steps().empty());
  const fs::path p = save(3, "fresh");
  EXPECT_EQ(p, dir_ / "step-00000003");
  EXPECT_EQ(tag_of(p), "fresh");
  EXPECT_FALSE(fs::exists(p / "junk.bin"));
  EXPECT_FALSE(fs::exists(p / "deep"));
  EXPECT_EQ(entries(), std::vector<std::string>{"step-00000003"});
}

TEST_F(CheckpointDirs, ReplacingAnExistingCheckpoint) {
  save(7, "A");
  write_checkpoint_dir(dir_, checkpoint_name(7), [](const fs::path& d) {
    std::ofstream(d / "only-in-B") << "b";
    write_json_atomically(d / "state.json", json{{"tag", "B"}});
  });
  EXPECT_EQ(tag_of(dir_ / "step-00000007"), "B");
  EXPECT_TRUE(fs::exists(dir_ / "step-00000007" / "only-in-B"));
  EXPECT_FALSE(fs::exists(dir_ / "step-00000007" / "model.safetensors"));  // nothing merged
  EXPECT_EQ(entries(), std::vector<std::string>{"step-00000007"});
  // commit() twice is harmless; a file in the way is a clear error.
  CheckpointDir c(dir_, "step-00000008");
  EXPECT_EQ(c.commit(), dir_ / "step-00000008");
  EXPECT_EQ(c.commit(), dir_ / "step-00000008");
  std::ofstream(dir_ / "step-00000009") << "in the way";
  CheckpointDir blocked(dir_, "step-00000009");
  expect_error([&] { blocked.commit(); }, "exists and is not a directory");
  expect_error([&] { CheckpointDir bad(dir_, "../escape"); }, "not a plain folder name");
  expect_error([&] { CheckpointDir bad(dir_, ".hidden"); }, "not a plain folder name");
}

TEST_F(CheckpointDirs, JsonFiles) {
  const json j = {{"step", 12}, {"lr", 3e-4}, {"name", "run \u00e9"}, {"list", {1, 2, 3}}};
  write_json_atomically(dir_ / "a.json", j);
  EXPECT_EQ(read_json(dir_ / "a.json"), j);
  write_json_atomically(dir_ / "a.json", json{{"step", 13}});  // replaces
  EXPECT_EQ(read_json(dir_ / "a.json")["step"], 13);
  EXPECT_EQ(entries(), std::vector<std::string>{"a.json"});

  expect_error([&] { read_json(dir_ / "missing.json", "trainer state"); },
               "trainer state " + (dir_ / "missing.json").string() + " is missing");
  std::ofstream(dir_ / "bad.json") << "{\n  \"step\": 12,\n  oops\n}\n";
  expect_error([&] { read_json(dir_ / "bad.json"); },
               "JSON file " + (dir_ / "bad.json").string() +
                   " is not valid JSON: parse error at line 3, column");
  std::ofstream(dir_ / "cut.json") << "{\"step\": ";
  expect_error([&] { read_json(dir_ / "cut.json"); }, "is not valid JSON");
  expect_error([&] { write_json_atomically(dir_ / "no" / "such" / "dir.json", j); }, "cannot create");
}

namespace {
// transformers' config.json of state-spaces/mamba-130m-hf (the keys that matter here).
const char* kMamba130m = R"({
  "architectures": ["MambaForCausalLM"], "bos_token_id": 0, "conv_kernel": 4, "eos_token_id": 0,
  "expand": 2, "fused_add_norm": true, "hidden_act": "silu", "hidden_size": 768,
  "initializer_range": 0.1, "intermediate_size": 1536, "layer_norm_epsilon": 1e-05,
  "model_type": "mamba", "n_layer": 24, "num_hidden_layers": 24, "pad_token_id": 0,
  "rescale_prenorm_residual": false, "residual_in_fp32": true, "rms_norm": true,
  "state_size": 16, "time_step_floor": 0.0001, "time_step_init_scheme": "random",
  "time_step_max": 0.1, "time_step_min": 0.001, "time_step_rank": 48, "time_step_scale": 1.0,
  "torch_dtype": "float32", "transformers_version": "4.39.0.dev0", "use_bias": false,
  "use_cache": true, "use_conv_bias": true, "vocab_size": 50280
})";
}  // namespace

TEST(HfMambaConfig, ParsesTransformersConfig) {
  const auto c = parse_hf_mamba_config(json::parse(kMamba130m));
  EXPECT_EQ(c.vocab_size, 50280);
  EXPECT_EQ(c.hidden_size, 768);
  EXPECT_EQ(c.state_size, 16);
  EXPECT_EQ(c.num_hidden_layers, 24);
  EXPECT_EQ(c.expand, 2);
  EXPECT_EQ(c.intermediate_size(), 1536);
  EXPECT_EQ(c.conv_kernel, 4);
  EXPECT_EQ(c.time_step_rank, 48);
  EXPECT_FALSE(c.use_bias);
  EXPECT_TRUE(c.use_conv_bias);
  EXPECT_TRUE(c.tie_word_embeddings);  // absent: transformers' default
  EXPECT_DOUBLE_EQ(c.layer_norm_epsilon, 1e-5);

  const auto a = parse_hf_mamba_config(json::parse(R"({"model_type": "mamba",
      "hidden_size": 1000, "time_step_rank": "auto", "tie_word_embeddings": false,
      "use_bias": true, "layer_norm_epsilon": 1e-6, "vocab_size": 17, "state_size": 8,
      "num_hidden_layers": 3, "expand": 3, "conv_kernel": 2})"));
  EXPECT_EQ(a.time_step_rank, 63);  // ceil(1000 / 16)
  EXPECT_FALSE(a.tie_word_embeddings);
  EXPECT_TRUE(a.use_bias);
  EXPECT_EQ(a.intermediate_size(), 3000);
  EXPECT_EQ(a.vocab_size, 17);
  EXPECT_EQ(a.num_hidden_layers, 3);
  EXPECT_DOUBLE_EQ(a.layer_norm_epsilon, 1e-6);
  // Everything absent: transformers' MambaConfig() defaults.
  const auto d = parse_hf_mamba_config(json::parse(R"({"model_type": "mamba", "hidden_size": 64})"));
  EXPECT_EQ(d.time_step_rank, 4);
  EXPECT_EQ(d.num_hidden_layers, 32);
  EXPECT_EQ(d.conv_kernel, 4);
}

TEST(HfMambaConfig, ClearErrors) {
  expect_error([] { parse_hf_mamba_config(json::parse(R"({"model_type": "llama"})"), "x/config.json"); },
               "Hugging Face config x/config.json: \"model_type\" is \"llama\"; Magellano imports "
               "only \"mamba\"");
  expect_error([] { parse_hf_mamba_config(json::parse(R"({"d_model": 768, "n_layer": 24})")); },
               "has no \"model_type\"");
  expect_error([] { parse_hf_mamba_config(json::parse(R"({"model_type":"mamba","hidden_size":"768"})")); },
               "\"hidden_size\" is \"768\"; expected a positive integer");
  expect_error([] { parse_hf_mamba_config(json::parse(R"({"model_type":"mamba","time_step_rank":0})")); },
               "\"time_step_rank\" is 0; expected a positive integer");
  expect_error([] { parse_hf_mamba_config(json::parse(R"({"model_type":"mamba","use_bias":1})")); },
               "\"use_bias\" is 1; expected true or false");
  expect_error([] { parse_hf_mamba_config(json::parse(R"([1])")); }, "not an object");
}

TEST_F(CheckpointDirs, HfMambaDirDetection) {
  fs::create_directories(dir_ / "mamba");
  std::ofstream(dir_ / "mamba" / "config.json") << kMamba130m;
  fs::create_directories(dir_ / "llama");
  std::ofstream(dir_ / "llama" / "config.json") << R"({"model_type": "llama"})";
  fs::create_directories(dir_ / "broken");
  std::ofstream(dir_ / "broken" / "config.json") << "{";
  EXPECT_TRUE(is_hf_mamba_dir(dir_ / "mamba"));
  EXPECT_FALSE(is_hf_mamba_dir(dir_ / "llama"));
  EXPECT_FALSE(is_hf_mamba_dir(dir_ / "broken"));
  EXPECT_FALSE(is_hf_mamba_dir(dir_ / "absent"));
  EXPECT_EQ(read_hf_mamba_config(dir_ / "mamba").num_hidden_layers, 24);
  EXPECT_EQ(read_hf_mamba_config(dir_ / "mamba" / "config.json").hidden_size, 768);
  expect_error([&] { read_hf_mamba_config(dir_ / "llama"); }, "\"llama\"");
  expect_error([&] { read_hf_mamba_config(dir_ / "broken"); }, "is not valid JSON");
}
