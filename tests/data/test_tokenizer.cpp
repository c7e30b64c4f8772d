// GPT-2 tokenizer: every reference case, tinyshakespeare, special tokens, invalid UTF-8,
// multi-threaded equality, and the pre-tokenizer on hand-checked strings.
#include <gtest/gtest.h>

#include <random>

#include "magellano/data/pretokenizer.hpp"
#include "magellano/data/tokenizer.hpp"
#include "magellano/data/unicode_class.hpp"
#include "magellano/runtime/error.hpp"
#include "shared_data.hpp"

using namespace magellano::data;
using mgdata::read_file;
using mgdata::shared_data;

namespace {

const Tokenizer& gpt2() {
  static const Tokenizer t = Tokenizer::load(shared_data() / "gpt2");
  return t;
}

std::vector<std::string> pieces(std::string_view text) {
  std::vector<std::string> out;
  for_each_pretoken(text, [&](std::string_view p) { out.emplace_back(p); });
  return out;
}

void check_case_file(const std::string& stem, const std::string& separator, size_t expected) {
  const auto dir = shared_data() / "tokenizer_tests";
  const auto inputs = mgdata::split_cases(read_file(dir / (stem + ".inp")), separator);
  const std::string out_text = read_file(dir / (stem + ".out"));
  std::vector<std::string> lines;
  for (size_t s = 0, e; s < out_text.size(); s = e + 1) {
    e = out_text.find('\n', s);
    if (e == std::string::npos) e = out_text.size();
    lines.push_back(out_text.substr(s, e - s));
  }
  ASSERT_EQ(inputs.size(), expected);
  ASSERT_EQ(lines.size(), expected);
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto want = mgdata::parse_ids(lines[i]);
    const auto got = gpt2().encode(inputs[i], SpecialTokens::Allowed);
    EXPECT_EQ(got, want) << stem << " case " << i << ": \"" << inputs[i] << "\"";
    EXPECT_EQ(gpt2().decode(want), inputs[i]) << stem << " case " << i << " decode";
  }
}

}  // namespace

TEST(Pretokenizer, SplitsLikeGpt2Pattern) {
  using V = std::vector<std::string>;
  EXPECT_EQ(pieces("Hello world"), (V{"Hello", " world"}));
  EXPECT_EQ(pieces("I'm here, they'll go"), (V{"I", "'m", " here", ",", " they", "'ll", " go"}));
  EXPECT_EQ(pieces("it'S"), (V{"it", "'", "S"}));  // contractions are case-sensitive
  EXPECT_EQ(pieces("a   b"), (V{"a", "  ", " b"}));
  EXPECT_EQ(pieces("a \n\n b"), (V{"a", " \n\n", " b"}));
  EXPECT_EQ(pieces("x\n\ny"), (V{"x", "\n", "\n", "y"}));
  EXPECT_EQ(pieces("end   "), (V{"end", "   "}));
  EXPECT_EQ(pieces("abc123 45"), (V{"abc", "123", " 45"}));
  EXPECT_EQ(pieces("!!'s ?!"), (V{"!!'", "s", " ?!"}));
  EXPECT_EQ(pieces("\xC3\xA9t\xC3\xA9 \xE2\x85\xA0"), (V{"\xC3\xA9t\xC3\xA9", " \xE2\x85\xA0"}));
  // U+3000 (ideographic space) is \s; U+00A0 too.
  EXPECT_EQ(pieces("a\xE3\x80\x80" "b"), (V{"a", "\xE3\x80\x80", "b"}));
  // Invalid bytes are "other" symbols and join runs of punctuation.
  EXPECT_EQ(pieces("a\xFF\xFE!b"), (V{"a", "\xFF\xFE!", "b"}));
}

TEST(Pretokenizer, UnicodeClassesComeFromTables) {
  EXPECT_STREQ(unicode_tables_version(), "15.0.0");
  EXPECT_EQ(char_class(U'a'), CharClass::Letter);
  EXPECT_EQ(char_class(0x4E2D), CharClass::Letter);   // CJK 中
  EXPECT_EQ(char_class(0x0663), CharClass::Number);   // Arabic-Indic three
  EXPECT_EQ(char_class(0x2167), CharClass::Number);   // Roman numeral eight (Nl)
  EXPECT_EQ(char_class(0x00B2), CharClass::Number);   // superscript two (No)
  EXPECT_EQ(char_class(0x0085), CharClass::Space);    // NEL
  EXPECT_EQ(char_class(0x001C), CharClass::Other);    // not White_Space
  EXPECT_EQ(char_class(0x1F600), CharClass::Other);   // emoji
  EXPECT_EQ(char_class(0x0301), CharClass::Other);    // combining accent (Mn)
  EXPECT_EQ(char_class(kInvalidCodePoint), CharClass::Other);
}

TEST(Pretokenizer, SafeSplitsDoNotChangePieces) {
  std::mt19937 rng(7);
  const char alphabet[] = {'a', 'b', ' ', '\n', '\n', '!', '1', '\'', 's', '\t'};
  for (int trial = 0; trial < 300; ++trial) {
    std::string text;
    for (int i = 0; i < 60; ++i) text += alphabet[rng() % sizeof(alphabet)];
    const auto whole = pieces(text);
    for (size_t cut = next_safe_split(text, 0); cut < text.size();
         cut = next_safe_split(text, cut + 1)) {
      auto joined = pieces(std::string_view(text).substr(0, cut));
      const auto tail = pieces(std::string_view(text).substr(cut));
      joined.insert(joined.end(), tail.begin(), tail.end());
      ASSERT_EQ(joined, whole) << "cut at " << cut << " of \"" << text << "\"";
    }
  }
}

TEST(Gpt2Tokenizer, ReferenceCases106) {
  MG_REQUIRE_SHARED_DATA();
  check_case_file("gpt2_reference_cases", "\n__gpt2_case__\n", 106);
}

TEST(Gpt2Tokenizer, LlamaCppCases46) {
  MG_REQUIRE_SHARED_DATA();
  check_case_file("llamacpp_ggml-vocab-gpt-2.gguf", "\n__ggml_vocab_test__\n", 46);
}

TEST(Gpt2Tokenizer, TinyShakespeareExact) {
  MG_REQUIRE_SHARED_DATA();
  const std::string text = read_file(shared_data() / "corpus" / "tinyshakespeare.txt");
  const std::string raw = read_file(shared_data() / "tokenizer_tests" / "tinyshakespeare.gpt2.u16");
  ASSERT_EQ(raw.size(), 338025u * 2);
  std::vector<uint32_t> want(raw.size() / 2);
  for (size_t i = 0; i < want.size(); ++i)
    want[i] = static_cast<uint8_t>(raw[2 * i]) | (static_cast<uint8_t>(raw[2 * i + 1]) << 8);
  const auto single = gpt2().encode(text, SpecialTokens::AsText, 1);
  ASSERT_EQ(single.size(), want.size());
  EXPECT_TRUE(single == want);
  for (unsigned threads : {2u, 3u, 8u}) {
    EXPECT_TRUE(gpt2().encode(text, SpecialTokens::AsText, threads) == want)
        << threads << " threads";
  }
  EXPECT_EQ(gpt2().decode(single), text);
}

TEST(Gpt2Tokenizer, SpecialTokenAllowedOrText) {
  MG_REQUIRE_SHARED_DATA();
  const Tokenizer& t = gpt2();
  EXPECT_EQ(t.vocab_size(), 50257u);
  ASSERT_EQ(t.eot_id(), 50256u);
  const std::string text = "Hi<|endoftext|> there";
  const auto allowed = t.encode(text, SpecialTokens::Allowed);
  EXPECT_EQ(allowed, (std::vector<uint32_t>{17250, 50256, 612}));
  const auto as_text = t.encode(text, SpecialTokens::AsText);
  EXPECT_EQ(std::count(as_text.begin(), as_text.end(), 50256u), 0);
  EXPECT_EQ(as_text, (std::vector<uint32_t>{17250, 27, 91, 437, 1659, 5239, 91, 29, 612}));
  EXPECT_EQ(t.decode(allowed), text);
  EXPECT_EQ(t.decode(as_text), text);
  EXPECT_EQ(t.encode("<|endoftext|><|endoftext|>", SpecialTokens::Allowed),
            (std::vector<uint32_t>{50256, 50256}));
}

TEST(Gpt2Tokenizer, InvalidUtf8RoundTrips) {
  MG_REQUIRE_SHARED_DATA();
  std::mt19937 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    std::string bytes;
    const int n = 1 + static_cast<int>(rng() % 200);
    for (int i = 0; i < n; ++i) bytes += static_cast<char>(rng() % 256);
    const auto ids = gpt2().encode(bytes, SpecialTokens::AsText);
    for (uint32_t id : ids) ASSERT_LT(id, 50257u);
    ASSERT_EQ(gpt2().decode(ids), bytes);
  }
  // A lone continuation byte and a truncated 3-byte sequence, between words.
  const std::string s = "abc \x80 def \xE2\x82 ghi \xED\xA0\x80";
  EXPECT_EQ(gpt2().decode(gpt2().encode(s, SpecialTokens::AsText)), s);
}

TEST(Gpt2Tokenizer, LongPiecesUseHeapPathConsistently) {
  MG_REQUIRE_SHARED_DATA();
  // A 5000-character "word" goes through the heap merge; its halves' boundary must not matter
  // for a repeated pattern, and it must round-trip.
  std::string word;
  for (int i = 0; i < 1000; ++i) word += "abcde";
  const auto ids = gpt2().encode(word, SpecialTokens::AsText);
  EXPECT_EQ(gpt2().decode(ids), word);
  EXPECT_LT(ids.size(), word.size() / 2);
  const std::string spaces(3000, ' ');
  EXPECT_EQ(gpt2().decode(gpt2().encode(spaces, SpecialTokens::AsText)), spaces);
}

TEST(Gpt2Tokenizer, DecodeRejectsIdsOutsideVocabulary) {
  MG_REQUIRE_SHARED_DATA();
  const std::vector<uint32_t> ids{50257};
  EXPECT_THROW(gpt2().decode(ids), magellano::Error);
}
