// BPE trainer: a hand-checked example, determinism, GPT-2-style layout, loading back and
// round-tripping text, bad input.
#include <gtest/gtest.h>

#include "magellano/data/bpe_trainer.hpp"
#include "magellano/data/tokenizer.hpp"
#include "magellano/runtime/error.hpp"
#include "shared_data.hpp"

using namespace magellano::data;
using mgdata::read_file;
using mgdata::TempDir;

namespace {
BpeModel train_text(const std::string& text, size_t vocab) {
  WordCounter words;
  words.add_text(text);
  return train_bpe(words, vocab);
}

std::string sample_text() {
  std::string text;
  const char* lines[] = {"The cat sat on the mat.\n", "A dog chased the cat!\n",
                         "Cats and dogs: 12 of them, 345 in all.\n", "Ünïcödé wörds tôo.\n"};
  for (int i = 0; i < 200; ++i) text += lines[i % 4] + std::to_string(i) + "\n";
  return text;
}
}  // namespace

TEST(BpeTrainer, HandCheckedMerges) {
  // Words "ab" x1, " ab" x2, " cd" x1: (a,b) has 3, then (Ġ,ab) 2, then the tie (c,d) vs (Ġ,c)
  // goes to the smaller ids: c=66, d=67 < Ġ=220.
  const BpeModel m = train_text("ab ab ab cd", 260);
  ASSERT_EQ(m.merges.size(), 3u);
  ASSERT_EQ(m.tokens.size(), 260u);
  EXPECT_EQ(m.tokens[256], "ab");
  EXPECT_EQ(m.tokens[257], " ab");
  EXPECT_EQ(m.tokens[258], "cd");
  EXPECT_EQ(m.tokens[259], "<|endoftext|>");
  EXPECT_EQ(merges_text(m), "#version: 0.2\na b\n\xC4\xA0 ab\nc d\n");
}

TEST(BpeTrainer, StopsWhenPairsRunOut) {
  BpeTrainReport report;
  WordCounter words;
  words.add_text("abc<|endoftext|>abc");  // the special token only separates documents
  const BpeModel m = train_bpe(words, 1000, &report);
  EXPECT_TRUE(report.stopped_early);
  EXPECT_EQ(m.merges.size(), 2u);  // a b, ab c
  EXPECT_EQ(m.tokens.back(), "<|endoftext|>");
  EXPECT_EQ(m.tokens[257], "abc");
}

TEST(BpeTrainer, DeterministicAndLoadsBackAndRoundTrips) {
  const std::string text = sample_text();
  const BpeModel a = train_text(text, 400), b = train_text(text, 400);
  EXPECT_EQ(encoder_json_text(a), encoder_json_text(b));
  EXPECT_EQ(merges_text(a), merges_text(b));
  ASSERT_EQ(a.tokens.size(), 400u);
  TempDir dir;
  save_bpe_model(a, dir.path());
  const Tokenizer t = Tokenizer::load(dir.path());
  EXPECT_EQ(t.vocab_size(), 400u);
  EXPECT_EQ(t.eot_id(), 399u);
  const auto ids = t.encode(text, SpecialTokens::AsText);
  EXPECT_LT(ids.size(), text.size() / 2);  // it learned something
  EXPECT_EQ(t.decode(ids), text);
  const std::string unseen = "Zebras \xF0\x9F\xA6\x93 quietly \xFF\xFE<|endoftext|>";
  EXPECT_EQ(t.decode(t.encode(unseen, SpecialTokens::Allowed)), unseen);
  EXPECT_EQ(t.encode("<|endoftext|>", SpecialTokens::Allowed), (std::vector<uint32_t>{399}));
}

TEST(BpeTrainer, BadInput) {
  WordCounter empty;
  EXPECT_THROW(train_bpe(empty, 1000), magellano::Error);
  WordCounter some;
  some.add_text("hello");
  EXPECT_THROW(train_bpe(some, 256), magellano::Error);
}

TEST(BpeTrainer, EightThousandOnTinyShakespeare) {
  MG_REQUIRE_SHARED_DATA();
  WordCounter words;
  words.add_files({mgdata::shared_data() / "corpus" / "tinyshakespeare.txt"});
  const BpeModel m = train_bpe(words, 8192);
  EXPECT_EQ(m.tokens.size(), 8192u);
  const Tokenizer t(m);
  const std::string text = read_file(mgdata::shared_data() / "corpus" / "tinyshakespeare.txt");
  const auto ids = t.encode(text, SpecialTokens::AsText, 2);
  EXPECT_EQ(t.decode(ids), text);
  EXPECT_LT(ids.size(), 338025u);  // fewer tokens than GPT-2 on the text it was trained on
}
