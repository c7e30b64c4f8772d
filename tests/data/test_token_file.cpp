// Token files: round trips for both widths, raw .u16, and every kind of bad file.
#include <gtest/gtest.h>

#include <numeric>

#include "magellano/data/token_file.hpp"
#include "magellano/runtime/error.hpp"
#include "shared_data.hpp"

using namespace magellano::data;
using magellano::Error;
using mgdata::TempDir;

namespace {

// Runs f and returns the message of the magellano::Error it throws ("" if none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::vector<uint32_t> read_all(const TokenFile& f) {
  std::vector<uint32_t> out(f.size());
  for (uint64_t i = 0; i < f.size(); ++i) out[i] = f[i];
  return out;
}

}  // namespace

TEST(TokenFile, RoundTripTwoByteIds) {
  TempDir dir;
  std::vector<uint32_t> ids{0, 1, 50256, 42, 40000};
  write_token_file(dir / "a.tok", 50257, ids);
  const auto f = TokenFile::open(dir / "a.tok");
  EXPECT_EQ(f.id_width(), 2u);
  EXPECT_EQ(f.vocab_size(), 50257u);
  EXPECT_EQ(read_all(f), ids);
  EXPECT_EQ(std::filesystem::file_size(dir / "a.tok"), 32u + 2 * ids.size());
  std::vector<int32_t> window(3);
  f.copy(1, 3, window.data());
  EXPECT_EQ(window, (std::vector<int32_t>{1, 50256, 42}));
}

TEST(TokenFile, RoundTripFourByteIdsWhenVocabularyIsLarge) {
  TempDir dir;
  std::vector<uint32_t> ids{0, 65536, 99999, 7};
  write_token_file(dir / "b.tok", 100000, ids);
  const auto f = TokenFile::open(dir / "b.tok");
  EXPECT_EQ(f.id_width(), 4u);
  EXPECT_EQ(read_all(f), ids);
  EXPECT_EQ(token_id_width(65536), 2u);
  EXPECT_EQ(token_id_width(65537), 4u);
}

TEST(TokenFile, StreamingWriterAndNoFileUntilCommit) {
  TempDir dir;
  {
    TokenFileWriter w(dir / "c.tok", 1000);
    std::vector<uint32_t> part(100);
    std::iota(part.begin(), part.end(), 0u);
    w.append(part);
    w.append(part);
    EXPECT_FALSE(std::filesystem::exists(dir / "c.tok"));
    w.commit();
  }
  EXPECT_EQ(TokenFile::open(dir / "c.tok").size(), 200u);
  {  // abandoned writer: neither output nor temp file remains
    TokenFileWriter w(dir / "d.tok", 1000);
    std::vector<uint32_t> part{1, 2, 3};
    w.append(part);
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "d.tok"));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
}

TEST(TokenFile, WriterRejectsIdsOutsideVocabulary) {
  TempDir dir;
  TokenFileWriter w(dir / "e.tok", 10);
  std::vector<uint32_t> bad{3, 10};
  EXPECT_NE(error_of([&] { w.append(bad); }).find("id 10"), std::string::npos);
}

TEST(TokenFile, RejectsTruncatedFile) {
  TempDir dir;
  std::vector<uint32_t> ids(50, 5);
  write_token_file(dir / "t.tok", 100, ids);
  std::filesystem::resize_file(dir / "t.tok", 32 + 2 * 49);
  const auto msg = error_of([&] { TokenFile::open(dir / "t.tok"); });
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
  std::filesystem::resize_file(dir / "t.tok", 10);
  EXPECT_NE(error_of([&] { TokenFile::open(dir / "t.tok"); }).find("too short"), std::string::npos);
}

TEST(TokenFile, RejectsForeignAndGarbledFiles) {
  TempDir dir;
  mgdata::write_file(dir / "x.tok", "this is just some text, not token ids at all.....");
  EXPECT_NE(error_of([&] { TokenFile::open(dir / "x.tok"); }).find("not a Magellano token file"),
            std::string::npos);
  std::vector<uint32_t> ids{1, 2, 3};
  write_token_file(dir / "v.tok", 100, ids);
  std::string bytes = mgdata::read_file(dir / "v.tok");
  bytes[8] = 9;  // version
  mgdata::write_file(dir / "v.tok", bytes);
  EXPECT_NE(error_of([&] { TokenFile::open(dir / "v.tok"); }).find("version 9"), std::string::npos);
  bytes[8] = 1;
  bytes[12] = 4;  // width disagrees with a vocabulary of 100
  mgdata::write_file(dir / "v.tok", bytes);
  EXPECT_NE(error_of([&] { TokenFile::open(dir / "v.tok"); }).find("garbled header"),
            std::string::npos);
  EXPECT_NE(error_of([&] { TokenFile::open(dir / "missing.tok"); }).find("cannot be opened"),
            std::string::npos);
  // A folder was "cannot be memory-mapped: No such device".
  std::filesystem::create_directories(dir / "folder.tok");
  EXPECT_NE(error_of([&] { TokenFile::open(dir / "folder.tok"); }).find("folder.tok is a folder, not a file"),
            std::string::npos) << error_of([&] { TokenFile::open(dir / "folder.tok"); });
}

TEST(TokenFile, RejectsIdsAtOrAboveVocabulary) {
  TempDir dir;
  std::vector<uint32_t> ids{1, 2, 3};
  write_token_file(dir / "g.tok", 100, ids);
  std::string bytes = mgdata::read_file(dir / "g.tok");
  bytes[32 + 2] = 100;  // second id becomes 100 == V
  mgdata::write_file(dir / "g.tok", bytes);
  const auto msg = error_of([&] { TokenFile::open(dir / "g.tok"); });
  EXPECT_NE(msg.find("holds id 100 at position 1"), std::string::npos) << msg;
  write_token_file(dir / "h.tok", 100, ids);
  EXPECT_NE(error_of([&] { TokenFile::open(dir / "h.tok", 50); }).find("vocabulary of 100"),
            std::string::npos);
  EXPECT_NO_THROW(TokenFile::open(dir / "h.tok", 100));
}

TEST(TokenFile, RawU16Files) {
  TempDir dir;
  mgdata::write_file(dir / "r.u16", std::string("\x01\x00\xFF\xFF\x10\x27", 6));
  const auto f = TokenFile::open(dir / "r.u16");
  EXPECT_TRUE(f.raw_u16());
  EXPECT_EQ(read_all(f), (std::vector<uint32_t>{1, 65535, 10000}));
  EXPECT_NE(error_of([&] { TokenFile::open(dir / "r.u16", 50257); }).find("holds id 65535"),
            std::string::npos);
  mgdata::write_file(dir / "odd.u16", std::string("\x01\x00\x02", 3));
  EXPECT_NE(error_of([&] { TokenFile::open(dir / "odd.u16"); }).find("odd size"),
            std::string::npos);
}

TEST(TokenFile, ReadsTinyShakespeareU16) {
  MG_REQUIRE_SHARED_DATA();
  const auto f = TokenFile::open(
      mgdata::shared_data() / "tokenizer_tests" / "tinyshakespeare.gpt2.u16", 50257);
  EXPECT_EQ(f.size(), 338025u);
  EXPECT_EQ(f[0], 5962u);  // "First"
}
