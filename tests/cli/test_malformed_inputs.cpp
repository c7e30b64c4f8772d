// Malformed and hostile input files given to the CLI (issue 23), as real processes: each gets a
// non-zero exit and exactly one `error:` line that names the problem, no process blocks on a FIFO
// where a file is expected, and the input folder is unchanged afterwards (every file hashed
// before and after). The cases span commands because they are about the files: configs (info,
// train), checkpoints (train --resume, eval, generate), token files and tokenizer files.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "error_text.hpp"
#include "magellano/data/token_file.hpp"
#include "temp_dir.hpp"

using mgtest::has;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// Every entry under `dir` by relative path: a regular file's FNV-1a hash of its bytes, or the
// kind of anything else (a FIFO is never opened).
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string rel = fs::relative(e.path(), dir).string();
    if (e.is_fifo()) out[rel] = "fifo";
    else if (e.is_directory()) out[rel] = "folder";
    else {
      std::ifstream in(e.path(), std::ios::binary);
      uint64_t h = 1469598103934665603ull;
      for (char c; in.get(c);) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
      out[rel] = std::to_string(h);
    }
  }
  return out;
}

// While alive, watches the FIFOs given: a process still blocked opening one after `seconds` is
// released (the FIFO opened for writing and closed) and fired() turns true.
class FifoWatchdog {
 public:
  FifoWatchdog(std::vector<fs::path> fifos, int seconds) : fifos_(std::move(fifos)) {
    thread_ = std::thread([this, seconds] {
      for (int i = 0; i < seconds * 10 && !done_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      while (!done_) {
        for (const auto& f : fifos_) {
          const int fd = ::open(f.c_str(), O_WRONLY | O_NONBLOCK);  // succeeds only with a reader waiting
          if (fd >= 0) {
            fired_ = true;
            ::close(fd);
          }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    });
  }
  ~FifoWatchdog() {
    done_ = true;
    thread_.join();
  }
  bool fired() const { return fired_; }

 private:
  std::vector<fs::path> fifos_;
  std::atomic<bool> done_{false}, fired_{false};
  std::thread thread_;
};

class MalformedInputs : public ::testing::Test {
 protected:
  void SetUp() override {
    if (mgtest::cli_path().empty()) GTEST_SKIP() << "the magellano CLI was not found (set MAGELLANO_CLI)";
    std::vector<uint32_t> ids(400);
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = (i * 37) % 512;
    magellano::data::write_token_file(dir_ / "train.tok", 512, ids);
    config_ = {{"model", {{"vocab_size", 512}, {"dim", 16}, {"layers", "ME"}, {"d_state", 4},
                          {"moe", {{"experts", 2}, {"top_k", 1}, {"hidden", 32}}}}},
               {"data", {{"train", (dir_ / "train.tok").string()}}},
               {"train", {{"steps", 4}, {"batch_size", 1}, {"seq_len", 16}, {"warmup_steps", 0}}},
               {"checkpoint", {{"dir", (dir_ / "runs").string()}}}};
    write("config.json", config_.dump(2));
  }

  void write(const std::string& rel, const std::string& text) {
    fs::create_directories((dir_ / rel).parent_path());
    std::ofstream(dir_ / rel, std::ios::binary) << text;
  }
  fs::path fifo(const std::string& rel) {
    fs::create_directories((dir_ / rel).parent_path());
    EXPECT_EQ(::mkfifo((dir_ / rel).c_str(), 0600), 0);
    return dir_ / rel;
  }
  // A checkpoint-like folder: the config and the given trainer state.
  fs::path checkpoint(const std::string& name, const std::string& trainer_state) {
    write(name + "/config.json", config_.dump(2));
    write(name + "/trainer_state.json", trainer_state);
    return dir_ / name;
  }

  // Runs the CLI; it must fail with one `error:` line containing `fragment`, within `seconds`
  // even when a FIFO is in the way, and leave every input file as it was.
  void expect_refused(const std::vector<std::string>& args, const std::string& fragment,
                      std::vector<fs::path> fifos = {}) {
    SCOPED_TRACE(args[0] + " ... " + args.back().substr(0, 80));
    const auto before = snapshot(dir_.path());
    mgtest::CliRun r;
    bool blocked;
    {
      FifoWatchdog watchdog(std::move(fifos), 20);
      r = mgtest::run_cli(args);
      blocked = watchdog.fired();
    }
    EXPECT_FALSE(blocked) << "the CLI blocked opening a FIFO";
    EXPECT_NE(r.exit_code, 0) << r.output;
    size_t error_lines = 0;
    std::string error_line;
    for (size_t p = 0; (p = r.output.find("error:", p)) != std::string::npos; ++p)
      if (p == 0 || r.output[p - 1] == '\n') {
        ++error_lines;
        error_line = r.output.substr(p, r.output.find('\n', p) - p);
      }
    EXPECT_EQ(error_lines, 1u) << r.output.substr(0, 2000);
    EXPECT_TRUE(has(error_line, fragment)) << r.output.substr(0, 2000);
    EXPECT_LT(error_line.size(), 600u) << "a huge value echoed: " << error_line.substr(0, 300);
    EXPECT_EQ(snapshot(dir_.path()), before) << "an input file changed or disappeared";
  }

  static std::string deep(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

  mgtest::TempDir dir_;
  json config_;
};

json trainer_state(const json& step) {
  json j = {{"format", "magellano-checkpoint-1"}, {"optimizer_steps", 2}, {"tokens", 32},
            {"batcher", {{"seed", 1234}, {"epoch", 0}, {"position", 2}}}};
  if (!step.is_discarded()) j["step"] = step;
  return j;
}

// A safetensors file with the given JSON header and data.
std::string safetensors(const std::string& header, const std::string& data) {
  std::string h = header + std::string((8 - header.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(uint64_t(h.size()) >> (8 * i));
  return out + h + data;
}

}  // namespace

// Deep JSON used to crash (copying or printing a 150,000-deep value recursed); a 1 MB key took
// 15 s in the "did you mean" search and was printed whole.
TEST_F(MalformedInputs, ConfigsWithDeepJsonHugeKeysAndDeepPatterns) {
  const std::string cfg = (dir_ / "config.json").string();
  write("deep.json", "{\"device\": " + deep(150000) + "}");
  expect_refused({"info", "--config", (dir_ / "deep.json").string()}, "nests arrays and objects more than 64 deep");
  expect_refused({"info", "--config", cfg, "--set", "device=" + deep(30000)}, "more than 64 deep");
  write("key.json", "{\"model\": {\"" + std::string(1000000, 'k') + "\": 1}}");
  const auto t0 = std::chrono::steady_clock::now();
  expect_refused({"info", "--config", (dir_ / "key.json").string()}, "unknown key 'model.kkkkk");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
  write("pattern.json", "{\"model\": {\"layers\": \"" + std::string(40000, '(') + "M" + std::string(40000, ')') + "\"}}");
  expect_refused({"info", "--config", (dir_ / "pattern.json").string()}, "groups nested more than 16 deep");
  write("twice.json", R"({"train": {"steps": 5}, "train": {"steps": 6}})");
  expect_refused({"info", "--config", (dir_ / "twice.json").string()}, "has the key \"train\" twice");
}

// Sizes: a huge dim printed negative totals with exit 0; values >= 2^31 passed validation and were
// truncated to int later (scan_chunk 2^31 failed in the scan as "chunk must be positive").
TEST_F(MalformedInputs, ConfigSizesOutOfRange) {
  const std::string cfg = (dir_ / "config.json").string();
  expect_refused({"info", "--config", cfg, "--set", "model.dim=4000000000000"}, "'model.dim' must be <= 65536");
  expect_refused({"info", "--config", cfg, "--set", "model.vocab_size=2147483647", "--set", "model.dim=65536",
                  "--set", "train.batch_size=1048576", "--set", "train.seq_len=16777216"},
                 "the model's size does not fit in 64 bits");
  expect_refused({"info", "--config", cfg, "--set", "model.moe.experts=4294967298"}, "'model.moe.experts' must be <= 4096");
  expect_refused({"train", "--config", cfg, "--set", "model.scan_chunk=2147483648"}, "'model.scan_chunk' must be <= 16777216");
}

// trainer_state.json fields: a string or missing step gave the JSON library's raw text, a
// negative step resumed with exit 0.
TEST_F(MalformedInputs, TrainerStateFields) {
  const std::vector<std::pair<json, std::string>> cases = {
      {json("2"), "has \"step\" \"2\"; it must be an integer >= 0"},
      {json(-5), "has \"step\" -5; it must be an integer >= 0"},
      {json(json::value_t::discarded), "has no \"step\""}};
  int i = 0;
  for (const auto& [step, fragment] : cases) {
    const fs::path ck = checkpoint("ck" + std::to_string(i++), trainer_state(step).dump());
    expect_refused({"train", "--resume", ck.string()}, "trainer state " + (ck / "trainer_state.json").string() + " " + fragment);
  }
  const fs::path ck = checkpoint("deep", "{\"format\": \"magellano-checkpoint-1\", \"step\": " + deep(150000) + "}");
  expect_refused({"train", "--resume", ck.string()}, "more than 64 deep");
}

// A safetensors header with a name twice was accepted (one entry silently dropped); a deep dtype
// crashed.
TEST_F(MalformedInputs, SafetensorsHeaders) {
  write("dup/config.json", config_.dump());
  write("dup/model.safetensors", safetensors(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                             R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                                             std::string(4, '\0')));
  const std::string tokens = (dir_ / "train.tok").string();
  expect_refused({"eval", "--checkpoint", (dir_ / "dup").string(), "--tokens", tokens}, "has the key \"a\" twice");
  write("deep/config.json", config_.dump());
  write("deep/model.safetensors", safetensors(R"({"a":{"dtype":)" + deep(150000) + R"(,"shape":[1],"data_offsets":[0,4]}})",
                                              std::string(4, '\0')));
  expect_refused({"eval", "--checkpoint", (dir_ / "deep").string(), "--tokens", tokens}, "more than 64 deep");
  write("hf/config.json", "{\"model_type\": \"mamba\", \"hidden_size\": " + deep(150000) + "}");
  expect_refused({"generate", "--checkpoint", (dir_ / "hf").string(), "--prompt-ids", "1 2"}, "more than 64 deep");
}

// A FIFO where a file is expected blocked forever; a folder gave misleading messages.
TEST_F(MalformedInputs, FifosAndFoldersWhereFilesAreExpected) {
  const std::string tokens = (dir_ / "train.tok").string();
  const std::string not_regular = "is not a regular file (a FIFO, socket or device)";
  write("fifo_ck/config.json", config_.dump());
  auto f = fifo("fifo_ck/model.safetensors");
  expect_refused({"eval", "--checkpoint", (dir_ / "fifo_ck").string(), "--tokens", tokens}, not_regular, {f});
  f = fifo("fifo_config.json");
  expect_refused({"info", "--config", f.string()}, not_regular, {f});
  f = fifo("fifo.tok");
  expect_refused({"train", "--config", (dir_ / "config.json").string(), "--set", "data.train=" + f.string()},
                 "token file " + f.string() + " " + not_regular, {f});
  f = fifo("fifo_tok/encoder.json");
  write("fifo_tok/vocab.bpe", "#version: 0.2\n");
  expect_refused({"tokenize", "--tokenizer", (dir_ / "fifo_tok").string(), "--in", tokens, "--ids"},
                 "tokenizer file " + f.string() + " " + not_regular, {f});
  write("fifo_state/config.json", config_.dump());
  f = fifo("fifo_state/trainer_state.json");
  expect_refused({"train", "--resume", (dir_ / "fifo_state").string()}, not_regular, {f});

  f = fifo("fifo_hf/tokenizer.json");
  expect_refused({"tokenize", "--tokenizer", (dir_ / "fifo_hf").string(), "--in", tokens, "--ids"},
                 "tokenizer file " + f.string() + " " + not_regular, {f});

  write("dir_ck/config.json", config_.dump());
  fs::create_directories(dir_ / "dir_ck/model.safetensors");
  expect_refused({"eval", "--checkpoint", (dir_ / "dir_ck").string(), "--tokens", tokens}, "model.safetensors is a folder, not a file");
  fs::create_directories(dir_ / "dir.tok");
  expect_refused({"train", "--config", (dir_ / "config.json").string(), "--set", "data.train=" + (dir_ / "dir.tok").string()},
                 "dir.tok is a folder, not a file");
  fs::create_directories(dir_ / "dir_tok/encoder.json");
  write("dir_tok/vocab.bpe", "#version: 0.2\n");
  expect_refused({"tokenize", "--tokenizer", (dir_ / "dir_tok").string(), "--in", tokens, "--ids"},
                 "encoder.json is a folder, not a file");
}

// tokenizer.json files of a kind Magellano does not run, or garbled: one line saying what and what to do.
TEST_F(MalformedInputs, TokenizerJsonOfUnsupportedKinds) {
  const std::string text = (dir_ / "config.json").string();
  auto refused = [&](const std::string& name, const json& j, const std::string& fragment) {
    write(name + "/tokenizer.json", j.dump());
    expect_refused({"tokenize", "--tokenizer", (dir_ / name).string(), "--in", text, "--ids"}, fragment);
  };
  const json bpe = {{"type", "BPE"}, {"vocab", {{"a", 0}}}, {"merges", json::array()}};
  const json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  refused("unigram", {{"model", {{"type", "Unigram"}, {"vocab", json::array()}}}}, "model type \"Unigram\" is not supported");
  refused("fallback", {{"model", {{"type", "BPE"}, {"byte_fallback", true}, {"vocab", json::object()}, {"merges", json::array()}}}},
          "a SentencePiece-style tokenizer.json without a decoder is not supported");
  refused("nfkc", {{"normalizer", {{"type", "NFKC"}}}, {"model", bpe}}, "the normalizer {\"type\":\"NFKC\"} (only NFC, Prepend, Replace of a string, or a Sequence of them) is not supported");
  refused("metaspace", {{"pre_tokenizer", {{"type", "Metaspace"}}}, {"model", bpe}}, "the Metaspace pre-tokenizer has no \"replacement\"");
  refused("whitespace", {{"pre_tokenizer", {{"type", "Whitespace"}}}, {"model", bpe}}, "pre-tokenizer type \"Whitespace\"");
  refused("regex",
          {{"pre_tokenizer", {{"type", "Split"}, {"pattern", {{"Regex", "\\p{Lu}+"}}}, {"behavior", "Isolated"}, {"invert", false}}},
           {"model", bpe}},
          "the property class \\p{Lu}");
  refused("bytes", {{"pre_tokenizer", byte_level}, {"decoder", byte_level}, {"model", bpe}}, "no token for byte 0");
  write("truncated/tokenizer.json", "{\"version\": \"1.0\", \"model\": {\"vocab\": {\"a\"");
  expect_refused({"tokenize", "--tokenizer", (dir_ / "truncated").string(), "--in", text, "--ids"}, "is not valid JSON");
}
