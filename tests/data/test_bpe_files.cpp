// Tokenizer files: GPT-2's files re-written byte for byte, Hugging Face names, and every kind
// of missing, truncated or garbled file rejected with a clear message.
#include <gtest/gtest.h>

#include "magellano/data/bpe_model.hpp"
#include "magellano/data/tokenizer.hpp"
#include "magellano/runtime/error.hpp"
#include "shared_data.hpp"

using namespace magellano::data;
using mgdata::read_file;
using mgdata::shared_data;
using mgdata::TempDir;
using mgdata::write_file;

namespace {

std::string load_error(const std::filesystem::path& dir) {
  try {
    Tokenizer::load(dir);
  } catch (const magellano::Error& e) {
    return e.what();
  }
  return "";
}

// A copy of GPT-2's files under dir/name, with vocab.bpe replaced by `merges` if given.
std::filesystem::path copy_gpt2(const TempDir& dir, const std::string& name,
                                const std::string* encoder = nullptr,
                                const std::string* merges = nullptr) {
  const auto out = dir / name;
  std::filesystem::create_directories(out);
  write_file(out / "encoder.json", encoder ? *encoder : read_file(shared_data() / "gpt2" / "encoder.json"));
  write_file(out / "vocab.bpe", merges ? *merges : read_file(shared_data() / "gpt2" / "vocab.bpe"));
  return out;
}

}  // namespace

TEST(BpeFiles, Gpt2FilesAreRewrittenByteForByte) {
  MG_REQUIRE_SHARED_DATA();
  const BpeModel m = load_bpe_model(shared_data() / "gpt2");
  EXPECT_EQ(m.tokens.size(), 50257u);
  EXPECT_EQ(m.merges.size(), 50000u);
  EXPECT_EQ(m.special_ids, (std::vector<uint32_t>{50256}));
  EXPECT_EQ(m.tokens[220], " ");
  TempDir dir;
  save_bpe_model(m, dir.path());
  EXPECT_TRUE(read_file(dir / "encoder.json") == read_file(shared_data() / "gpt2" / "encoder.json"));
  EXPECT_TRUE(read_file(dir / "vocab.bpe") == read_file(shared_data() / "gpt2" / "vocab.bpe"));
}

TEST(BpeFiles, HuggingFaceNamesLoad) {
  MG_REQUIRE_SHARED_DATA();
  TempDir dir;
  write_file(dir / "vocab.json", read_file(shared_data() / "gpt2" / "encoder.json"));
  write_file(dir / "merges.txt", read_file(shared_data() / "gpt2" / "vocab.bpe"));
  const Tokenizer t = Tokenizer::load(dir.path());
  EXPECT_EQ(t.encode("Hello world", SpecialTokens::AsText), (std::vector<uint32_t>{15496, 995}));
}

TEST(BpeFiles, MissingFilesAreNamed) {
  TempDir dir;
  EXPECT_NE(load_error(dir / "nope").find("does not exist"), std::string::npos);
  EXPECT_NE(load_error(dir.path()).find("holds no tokenizer.json"), std::string::npos);
  write_file(dir / "encoder.json", "{}");
  EXPECT_NE(load_error(dir.path()).find("vocab.bpe is missing"), std::string::npos)
      << load_error(dir.path());
}

// Deep JSON (which crashed), a key given twice, a huge token and files that are not regular
// files: each one line naming the file.
TEST(BpeFiles, HostileEncoderJsonIsOneLine) {
  TempDir dir;
  const std::string merges = "#version: 0.2\n";
  std::string enc = "{\"a\": 0, \"b\": " + std::string(150000, '[') + std::string(150000, ']') + "}";
  std::string msg = load_error(copy_gpt2(dir, "deep", &enc, &merges));
  EXPECT_NE(msg.find("encoder.json nests arrays and objects more than 64 deep"), std::string::npos) << msg;
  enc = R"({"a": 0, "a": 1})";
  msg = load_error(copy_gpt2(dir, "twice", &enc, &merges));
  EXPECT_NE(msg.find("has the key \"a\" twice"), std::string::npos) << msg;
  enc = "{\"" + std::string(1000000, 'x') + "\": 7}";
  msg = load_error(copy_gpt2(dir, "huge", &enc, &merges));
  EXPECT_NE(msg.find("... (1000000 bytes)\" has id 7"), std::string::npos) << msg.substr(0, 300);
  EXPECT_LT(msg.size(), 600u);
  std::filesystem::create_directories(dir / "folder" / "encoder.json");
  write_file(dir / "folder" / "vocab.bpe", merges);
  msg = load_error(dir / "folder");
  EXPECT_NE(msg.find("encoder.json is a folder, not a file. A tokenizer needs encoder.json and vocab.bpe."),
            std::string::npos) << msg;
}

TEST(BpeFiles, TruncatedEncoderJsonIsRejected) {
  MG_REQUIRE_SHARED_DATA();
  TempDir dir;
  std::string enc = read_file(shared_data() / "gpt2" / "encoder.json");
  enc.resize(enc.size() / 2);
  const auto msg = load_error(copy_gpt2(dir, "t", &enc));
  EXPECT_NE(msg.find("not valid JSON"), std::string::npos) << msg;
}

TEST(BpeFiles, TruncatedVocabBpeIsRejected) {
  MG_REQUIRE_SHARED_DATA();
  TempDir dir;
  std::string merges = read_file(shared_data() / "gpt2" / "vocab.bpe");
  std::string cut_at_line = merges.substr(0, merges.rfind('\n', merges.size() / 2) + 1);
  auto msg = load_error(copy_gpt2(dir, "lines", nullptr, &cut_at_line));
  EXPECT_NE(msg.find("made by no merge"), std::string::npos) << msg;
  std::string cut_mid_line = merges.substr(0, merges.find(' ', merges.size() / 2));
  msg = load_error(copy_gpt2(dir, "mid", nullptr, &cut_mid_line));
  EXPECT_NE(msg.find("expected \"<left> <right>\""), std::string::npos) << msg;
}

TEST(BpeFiles, GarbledFilesAreRejected) {
  MG_REQUIRE_SHARED_DATA();
  TempDir dir;
  std::string merges = read_file(shared_data() / "gpt2" / "vocab.bpe");
  std::string bad_merge = merges + "zzqqxx yyvvww\n";
  auto msg = load_error(copy_gpt2(dir, "m", nullptr, &bad_merge));
  EXPECT_NE(msg.find("line 50002"), std::string::npos) << msg;
  std::string not_object = "[1, 2, 3]";
  msg = load_error(copy_gpt2(dir, "a", &not_object));
  EXPECT_NE(msg.find("must be a JSON object"), std::string::npos) << msg;
  std::string bad_id = "{\"a\": -4}";
  msg = load_error(copy_gpt2(dir, "i", &bad_id));
  EXPECT_NE(msg.find("has id -4"), std::string::npos) << msg;
  std::string few_bytes = "{\"a\": 0, \"b\": 1}";
  msg = load_error(copy_gpt2(dir, "b", &few_bytes));
  EXPECT_NE(msg.find("no token for byte"), std::string::npos) << msg;
}
