// The tokenize / train-tokenizer subcommands as real processes ($MAGELLANO_CLI): output and
// exit codes for good and bad input; a killed tokenize leaves no temporary file, and stale ones
// of its outputs are removed by the next run.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>

#include "magellano/data/token_file.hpp"
#include "magellano/data/tokenizer.hpp"
#include "cli.hpp"
#include "hf_tokenizer_files.hpp"
#include "spm_tokenizer_files.hpp"
#include "shared_data.hpp"

using namespace magellano::data;
using mgdata::read_file;
using mgdata::shared_data;
using mgdata::TempDir;
using mgdata::write_file;

namespace {

using mgtest::CliRun;
using mgtest::run_cli;

std::string gpt2_dir() { return (shared_data() / "gpt2").string(); }

}  // namespace

TEST(Cli, TokenizeIdsPrintsOneLine) {
  MG_REQUIRE_CLI();
  MG_REQUIRE_SHARED_DATA();
  TempDir dir;
  write_file(dir / "in.txt", "Hello world<|endoftext|>");
  auto r = run_cli({"tokenize", "--tokenizer", gpt2_dir(), "--in", (dir / "in.txt").string(), "--ids",
                    "--allow-special"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "15496 995 50256\n");
  r = run_cli({"tokenize", "--tokenizer", gpt2_dir(), "--in", (dir / "in.txt").string(), "--ids"});
  EXPECT_EQ(r.output, "15496 995 27 91 437 1659 5239 91 29\n");
}

TEST(Cli, TokenizeSplitsLikeNanoGpt) {
  MG_REQUIRE_CLI();
  MG_REQUIRE_SHARED_DATA();
  TempDir dir;
  const auto r = run_cli({"tokenize", "--tokenizer", gpt2_dir(), "--in",
                          (shared_data() / "corpus" / "tinyshakespeare.txt").string(), "--out",
                          (dir / "ts").string(), "--val-fraction", "0.1", "--threads", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto train = TokenFile::open(dir / "ts.train.tok", 50257);
  const auto val = TokenFile::open(dir / "ts.val.tok", 50257);
  EXPECT_EQ(train.size(), 301966u);
  EXPECT_EQ(val.size(), 36059u);
  // Without a split the file holds exactly tinyshakespeare.gpt2.u16.
  ASSERT_EQ(run_cli({"tokenize", "--tokenizer", gpt2_dir(), "--in",
                     (shared_data() / "corpus" / "tinyshakespeare.txt").string(), "--out",
                     (dir / "all").string()}).exit_code, 0);
  const auto all = TokenFile::open(dir / "all.train.tok");
  const auto ref = TokenFile::open(shared_data() / "tokenizer_tests" / "tinyshakespeare.gpt2.u16");
  ASSERT_EQ(all.size(), ref.size());
  for (uint64_t i = 0; i < ref.size(); ++i) ASSERT_EQ(all[i], ref[i]) << "token " << i;
}

TEST(Cli, TrainTokenizerThenTokenize) {
  MG_REQUIRE_CLI();
  TempDir dir;
  std::string text;
  for (int i = 0; i < 300; ++i)
    text += "line " + std::to_string(i) + ": the quick brown fox jumps over the lazy dog\n";
  write_file(dir / "corpus.txt", text);
  auto r = run_cli({"train-tokenizer", "--in", (dir / "corpus.txt").string(), "--vocab-size",
                    "300", "--out", (dir / "tok").string()});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const Tokenizer t = Tokenizer::load(dir / "tok");
  EXPECT_EQ(t.vocab_size(), 300u);
  r = run_cli({"tokenize", "--tokenizer", (dir / "tok").string(), "--in",
               (dir / "corpus.txt").string(), "--out", (dir / "c").string(), "--eot-between-files"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto f = TokenFile::open(dir / "c.train.tok");
  EXPECT_EQ(f.vocab_size(), 300u);
  std::vector<uint32_t> ids(f.size());
  for (uint64_t i = 0; i < f.size(); ++i) ids[i] = f[i];
  EXPECT_EQ(ids.back(), 299u);  // <|endoftext|> after the file
  ids.pop_back();
  EXPECT_EQ(t.decode(ids), text);
}

// A Hugging Face tokenizer.json folder (GPT-4 style Split + ByteLevel, chat specials, BOS template;
// expected ids from tokenizers 0.23.3, tests/data/test_hf_tokenizer.cpp): the template is added by
// default (transformers' add_special_tokens=True), special tokens are text unless --allow-special,
// and tokenizer.json wins over vocab.json + merges.txt in the same folder.
TEST(Cli, TokenizeWithTokenizerJson) {
  MG_REQUIRE_CLI();
  MG_REQUIRE_SHARED_DATA();
  TempDir dir;
  mgtest::write_tokenizer_json(dir / "tok", mgtest::gpt4_style_tokenizer_json());
  std::filesystem::copy_file(shared_data() / "gpt2" / "encoder.json", dir / "tok" / "vocab.json");
  std::filesystem::copy_file(shared_data() / "gpt2" / "vocab.bpe", dir / "tok" / "merges.txt");
  write_file(dir / "tok" / "config.json", R"({"bos_token_id": 50257, "eos_token_id": 50256})");
  write_file(dir / "in.txt", "<|start_of_role|>user<|end_of_role|>Hi  x");
  const std::string tok = (dir / "tok").string(), in = (dir / "in.txt").string();
  auto r = run_cli({"tokenize", "--tokenizer", tok, "--in", in, "--ids", "--allow-special"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "50257 50257 7220 50258 17250 50259 87\n");
  r = run_cli({"tokenize", "--tokenizer", tok, "--in", in, "--ids", "--no-template"});
  EXPECT_EQ(r.output, "27 91 9688 62 1659 62 18090 91 29 7220 27 91 437 62 1659 62 18090 91 29 17250 50259 87\n");
  // Token files: the template around each file, the model's EOS (config.json) between files.
  write_file(dir / "b.txt", "Hello world");
  r = run_cli({"tokenize", "--tokenizer", tok, "--in", in, (dir / "b.txt").string(), "--out", (dir / "c").string(),
               "--allow-special", "--eot-between-files"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto f = TokenFile::open(dir / "c.train.tok");
  std::vector<uint32_t> ids(f.size());
  for (uint64_t i = 0; i < f.size(); ++i) ids[i] = f[i];
  EXPECT_EQ(ids, (std::vector<uint32_t>{50257, 50257, 7220, 50258, 17250, 50259, 87, 50256, 50257, 15496, 995, 50256}));
}

// A SentencePiece-style (Llama 2 / Jamba) tokenizer.json folder: ids with the BOS template (tokenizers
// 0.23.3, tests/data/test_sentencepiece_tokenizer.cpp), and --decode's text, with and without the
// special tokens; a bad id is one line.
TEST(Cli, TokenizeAndDecodeWithASentencePieceTokenizer) {
  MG_REQUIRE_CLI();
  TempDir dir;
  std::filesystem::create_directories(dir / "tok");
  write_file(dir / "tok" / "tokenizer.json", mgtest::spm_tokenizer_json().dump());
  write_file(dir / "in.txt", "<s>Hello<|im_start|>the</s> world");
  const std::string tok = (dir / "tok").string();
  auto r = run_cli({"tokenize", "--tokenizer", tok, "--in", (dir / "in.txt").string(), "--ids", "--allow-special"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "1 1 259 279 289 275 2 259 284\n");
  write_file(dir / "ids.txt", "1 1 259 279 289 275 2 259 284\n");
  r = run_cli({"tokenize", "--tokenizer", tok, "--in", (dir / "ids.txt").string(), "--decode"});
  EXPECT_EQ(r.output, "<s><s> Hello<|im_start|> the</s>  world");
  r = run_cli({"tokenize", "--tokenizer", tok, "--in", (dir / "ids.txt").string(), "--decode", "--skip-special"});
  EXPECT_EQ(r.output, "Hello the  world");
  write_file(dir / "ids.txt", "1 x2\n");
  r = run_cli({"tokenize", "--tokenizer", tok, "--in", (dir / "ids.txt").string(), "--decode"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("\"x2\" is not a token id"), std::string::npos) << r.output;
}

TEST(Cli, BadInputGivesOneLineAndNonZeroExit) {
  MG_REQUIRE_CLI();
  TempDir dir;
  write_file(dir / "empty.txt", "");
  write_file(dir / "text.txt", "some text\n");
  std::filesystem::create_directories(dir / "garbled");
  write_file(dir / "garbled" / "encoder.json", "{\"a\": 0,");
  write_file(dir / "garbled" / "vocab.bpe", "#version: 0.2\n");
  std::filesystem::create_directories(dir / "wordpiece");
  write_file(dir / "wordpiece" / "tokenizer.json", R"({"version": "1.0", "model": {"type": "WordPiece", "vocab": {}}})");

  auto expect_error = [](const CliRun& r, int code, const std::string& needle) {
    EXPECT_EQ(r.exit_code, code) << r.output;
    EXPECT_EQ(r.output.rfind("error: ", 0), 0u) << r.output;
    EXPECT_NE(r.output.find(needle), std::string::npos) << r.output;
  };
  expect_error(run_cli({"tokenize", "--tokenizer", (dir / "none").string(), "--in",
                        (dir / "text.txt").string(), "--ids"}),
               1, "does not exist");
  expect_error(run_cli({"tokenize", "--tokenizer", (dir / "garbled").string(), "--in",
                        (dir / "text.txt").string(), "--ids"}),
               1, "not valid JSON");
  expect_error(run_cli({"tokenize", "--tokenizer", (dir / "wordpiece").string(), "--in",
                        (dir / "text.txt").string(), "--ids"}),
               1, "model type \"WordPiece\" is not supported. Magellano reads BPE tokenizer.json files");
  expect_error(run_cli({"tokenize", "--in", (dir / "text.txt").string(), "--ids"}), 2,
               "tokenizer");
  expect_error(run_cli({"train-tokenizer", "--in", (dir / "empty.txt").string(), "--vocab-size",
                        "1000", "--out", (dir / "t").string()}),
               1, "empty");
  expect_error(run_cli({"train-tokenizer", "--in", (dir / "text.txt").string(), "--vocab-size",
                        "100", "--out", (dir / "t").string()}),
               2, "--vocab-size must be in [257, 2147483648] (an integer), got '100'");
  expect_error(run_cli({"train-tokenizer", "--in", (dir / "missing.txt").string(), "--vocab-size",
                        "1000", "--out", (dir / "t").string()}),
               1, "missing");
  EXPECT_FALSE(std::filesystem::exists(dir / "t" / "encoder.json"));

  ASSERT_EQ(run_cli({"train-tokenizer", "--in", (dir / "text.txt").string(), "--vocab-size",
                     "260", "--out", (dir / "small").string()}).exit_code, 0);
  expect_error(run_cli({"tokenize", "--tokenizer", (dir / "small").string(), "--in",
                        (dir / "empty.txt").string(), "--out", (dir / "e").string()}),
               1, "corpus is empty");
  EXPECT_FALSE(std::filesystem::exists(dir / "e.train.tok"));
  // Nothing half-written: only the inputs and the folders remain.
  for (const auto& entry : std::filesystem::directory_iterator(dir.path()))
    EXPECT_EQ(entry.path().string().find(".tmp-"), std::string::npos) << entry.path();
}

// A tokenize killed while it writes leaves nothing beside its outputs (the data goes to unnamed
// files until they are complete): the process is killed once it holds both output files open.
TEST(Cli, KilledTokenizeLeavesNoTemporaryFiles) {
  MG_REQUIRE_CLI();
  MG_REQUIRE_SHARED_DATA();
  TempDir dir;
  const std::string text = read_file(shared_data() / "corpus" / "tinyshakespeare.txt");
  {
    std::ofstream big(dir / "big.txt", std::ios::binary);
    for (int i = 0; i < 16; ++i) big << text;  // ~18 MB: a second or more of encoding
  }
  const std::string cli = mgtest::cli_path(), tok = gpt2_dir(), in = (dir / "big.txt").string(),
                    out = (dir / "out").string();
  std::vector<const char*> argv = {cli.c_str(), "tokenize", "--tokenizer", tok.c_str(), "--in", in.c_str(),
                                   "--out", out.c_str(), "--val-fraction", "0.1", "--threads", "1", nullptr};
  pid_t pid = 0;
  ASSERT_EQ(::posix_spawn(&pid, cli.c_str(), nullptr, nullptr, const_cast<char* const*>(argv.data()), environ), 0);
  // Both outputs are open once /proc/<pid>/fd has two write links into the folder.
  int open_outputs = 0;
  for (int i = 0; i < 30000 && open_outputs < 2; ++i) {
    open_outputs = 0;
    std::error_code ec;
    for (const auto& fd : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
      const auto target = std::filesystem::read_symlink(fd.path(), ec).string();
      if (!ec && target.rfind(dir.path().string(), 0) == 0 && target.find("big.txt") == std::string::npos)
        ++open_outputs;
    }
    if (open_outputs < 2) ::usleep(1000);
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_EQ(open_outputs, 2) << "tokenize finished (or failed) before it could be killed mid-write";
  ASSERT_TRUE(WIFSIGNALED(status));
  std::vector<std::string> left;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) left.push_back(e.path().filename().string());
  EXPECT_EQ(left, std::vector<std::string>{"big.txt"});
}

// Temporaries of the outputs that a killed writer left under a name (file systems without
// unnamed files, or an older version) are removed by the next tokenize to the same prefix;
// one whose process still runs, and other files, are kept.
TEST(Cli, TokenizeRemovesStaleTemporariesOfItsOutputs) {
  MG_REQUIRE_CLI();
  MG_REQUIRE_SHARED_DATA();
  TempDir dir;
  write_file(dir / "in.txt", "Hello world, hello tokens.\n");
  const std::string live = std::to_string(::getpid());
  for (const char* name : {"c.train.tok.tmp-999999999", "c.val.tok.tmp-999999998", "other.train.tok.tmp-999999999"})
    write_file(dir / name, "partial");
  write_file(dir / ("c.train.tok.tmp-" + live), "being written");
  const auto r = run_cli({"tokenize", "--tokenizer", gpt2_dir(), "--in", (dir / "in.txt").string(), "--out",
                          (dir / "c").string(), "--val-fraction", "0.5"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::vector<std::string> left;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) left.push_back(e.path().filename().string());
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"c.train.tok", "c.train.tok.tmp-" + live, "c.val.tok", "in.txt",
                                            "other.train.tok.tmp-999999999"}));
}
