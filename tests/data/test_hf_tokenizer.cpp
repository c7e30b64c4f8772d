// Hugging Face tokenizer.json: GPT-2's own file (built from ../shared/data/gpt2) against the
// shared reference tokenizations; a GPT-4 / Llama-3 style file (Split regex, ByteLevel, chat special
// tokens, BOS template) and added-token options against ids from Hugging Face `tokenizers`; the
// regex matcher on its own; BOS / EOS from the configs; and one clear line for every kind of file
// that is not supported.
//
// Expected ids marked "tokenizers 0.23.3" were made with Hugging Face `tokenizers` 0.23.3 (pip) on
// the same tokenizer.json (tests/support/hf_tokenizer_files.hpp, saved by Tokenizer.save from
// models.BPE.from_file on ../shared/data/gpt2): Tokenizer.encode(text).ids (add_special_tokens=True),
// the AsText column with encode_special_tokens = True and add_special_tokens=False.
// scripts/check_hf_tokenizer.py repeats such checks on any tokenizer.json.
#include <gtest/gtest.h>

#include "error_text.hpp"
#include "hf_tokenizer_files.hpp"
#include "magellano/data/hf_tokenizer_json.hpp"
#include "magellano/data/regex_split.hpp"
#include "magellano/data/tokenizer.hpp"
#include "magellano/data/unicode_class.hpp"
#include "magellano/data/unicode_nfc.hpp"
#include "magellano/runtime/error.hpp"
#include "shared_data.hpp"

using namespace magellano::data;
using mgdata::read_file;
using mgdata::shared_data;
using mgdata::TempDir;
using mgdata::write_file;
using mgtest::expect_error;
using mgtest::tokenizer_from_json;
using Ids = std::vector<uint32_t>;
using nlohmann::json;

namespace {

const Tokenizer& gpt2_hf() {
  static const Tokenizer t = tokenizer_from_json(mgtest::gpt2_tokenizer_json());
  return t;
}

const Tokenizer& gpt4_style() {
  static const Tokenizer t = tokenizer_from_json(mgtest::gpt4_style_tokenizer_json());
  return t;
}

// The pieces SplitRegex cuts text into with behavior Isolated.
std::vector<std::string> regex_pieces(const std::string& pattern, std::string_view text) {
  PieceSplitter sp;
  sp.byte_level_regex = false;
  sp.splits.push_back({SplitRegex::compile(pattern), SplitBehavior::Isolated, false});
  std::vector<std::string> out;
  sp.for_each_piece(text, [&](std::string_view p) { out.emplace_back(p); });
  return out;
}

void check_reference_cases(const Tokenizer& t, const std::string& stem, const std::string& separator) {
  const auto dir = shared_data() / "tokenizer_tests";
  const auto inputs = mgdata::split_cases(read_file(dir / (stem + ".inp")), separator);
  std::istringstream lines(read_file(dir / (stem + ".out")));
  std::string line;
  for (size_t i = 0; i < inputs.size() && std::getline(lines, line); ++i) {
    const auto want = mgdata::parse_ids(line);
    EXPECT_EQ(t.encode(inputs[i], SpecialTokens::Allowed), want) << stem << " case " << i;
    EXPECT_EQ(t.decode(want), inputs[i]) << stem << " case " << i;
  }
}

}  // namespace

// ---- the regex matcher ----

TEST(SplitRegex, Gpt4PatternPieces) {
  using V = std::vector<std::string>;
  const std::string p = mgtest::kGpt4Pattern;
  EXPECT_EQ(regex_pieces(p, "Hello world'S  \n\n x123456 ..\n\n  \t yes"),
            (V{"Hello", " world", "'S", "  \n\n", " x", "123", "456", " ..\n\n", "  \t", " yes"}));  // tokenizers 0.23.3
  // (?i:'s) also matches U+017F LATIN SMALL LETTER LONG S, as Oniguruma's case folding does.
  EXPECT_EQ(regex_pieces(p, "'\xC5\xBFx"), (V{"'\xC5\xBF", "x"}));
  EXPECT_EQ(regex_pieces(p, "end   "), (V{"end", "   "}));
  EXPECT_EQ(regex_pieces(p, "a\xFF\xFE!b"), (V{"a", "\xFF\xFE!", "b"}));  // invalid bytes are "other"
}

TEST(SplitRegex, QuantifiersLookaheadAndClasses) {
  using V = std::vector<std::string>;
  EXPECT_EQ(regex_pieces("a{2,3}", "aaaaaaa"), (V{"aaa", "aaa", "a"}));
  EXPECT_EQ(regex_pieces("a{2,3}?", "aaaaa"), (V{"aa", "aa", "a"}));
  EXPECT_EQ(regex_pieces("\\p{L}+?x", "abxcx"), (V{"abx", "cx"}));
  EXPECT_EQ(regex_pieces("\\s+(?!\\S)|\\s+", "a   b"), (V{"a", "  ", " ", "b"}));
  EXPECT_EQ(regex_pieces("a(?=b)", "aab"), (V{"a", "a", "b"}));
  // Possessive: a++ keeps every a, so "a++a" never matches; greedy gives one back.
  EXPECT_EQ(regex_pieces("a++a", "aaa"), (V{"aaa"}));
  EXPECT_EQ(regex_pieces("a+a", "aaa"), (V{"aaa"}));
  EXPECT_EQ(regex_pieces("(?>a+)b|a", "aab"), (V{"aab"}));
  EXPECT_EQ(regex_pieces("[^\\r\\n\\p{L}\\p{N}]?\\p{L}+", " \xC3\xA9t\xC3\xA9!"), (V{" \xC3\xA9t\xC3\xA9", "!"}));
  EXPECT_EQ(regex_pieces("[a-c\\-]+|\\x{4E2D}", "ab-d\xE4\xB8\xAD"), (V{"ab-", "d", "\xE4\xB8\xAD"}));
  EXPECT_EQ(regex_pieces("(?i:ab)", "AbaB"), (V{"Ab", "aB"}));
  EXPECT_EQ(regex_pieces(".", "a\nb"), (V{"a", "\n", "b"}));  // `.` skips \n: a gap piece
  // Line anchors, as Oniguruma's Ruby syntax (tokenizers 0.23.3).
  EXPECT_EQ(regex_pieces("a$", "aa\na"), (V{"a", "a", "\n", "a"}));
  EXPECT_EQ(regex_pieces("^a", "aa\na"), (V{"a", "a\n", "a"}));
  EXPECT_EQ(regex_pieces("\\s++$", "b a \n a  "), (V{"b a \n a", "  "}));
  // A long run costs no recursion depth.
  EXPECT_EQ(regex_pieces("\\p{L}+|\\s+(?!\\S)|\\s+", std::string(200000, 'a') + std::string(100000, ' ')).size(), 2u);
}

TEST(SplitRegex, RefusesWhatItCannotRunNamingIt) {
  expect_error([] { SplitRegex::compile("\\d+"); }, "the escape \\d");
  expect_error([] { SplitRegex::compile("\\bthe"); }, "the escape \\b");
  expect_error([] { SplitRegex::compile("(?<=a)b"); }, "look-behind");
  expect_error([] { SplitRegex::compile("\\p{Lu}"); }, "\\p{Lu}");
  expect_error([] { SplitRegex::compile("(a"); }, "without its ')'");
  expect_error([] { SplitRegex::compile("(?i:\xC3\xA9)"); }, "case-insensitive non-ASCII");
  expect_error([] { SplitRegex::compile(std::string(1000, '(') + std::string(1000, ')')); }, "nested more than 100 deep");
  // A quantified group over a long run would need deep recursion: refused, not a crash.
  expect_error([] { regex_pieces("(?:ab)+", std::string(100000, 'a') + std::string(100000, 'b')); }, "(no error)");
  std::string abab;
  for (int i = 0; i < 50000; ++i) abab += "ab";
  expect_error([&] { regex_pieces("(?:ab)+", abab); }, "nested steps on this text");
  // Exponential backtracking is cut off with a line, not left to run for ever.
  expect_error([] { regex_pieces("(?:a|a)*(?:a|a)*(?:a|a)*b", std::string(300, 'a')); }, "backtracking steps per symbol");
  expect_error([] { SplitRegex::compile("\\p{L}+"); }, "(no error)");
}

// ---- GPT-2's tokenizer.json ----

TEST(HfTokenizer, Gpt2TokenizerJsonGivesTheReferenceTokenizations) {
  MG_REQUIRE_SHARED_DATA();
  EXPECT_EQ(gpt2_hf().vocab_size(), 50257u);
  check_reference_cases(gpt2_hf(), "gpt2_reference_cases", "\n__gpt2_case__\n");
  check_reference_cases(gpt2_hf(), "llamacpp_ggml-vocab-gpt-2.gguf", "\n__ggml_vocab_test__\n");
  EXPECT_EQ(gpt2_hf().encode("Hi<|endoftext|> there", SpecialTokens::Allowed), (Ids{17250, 50256, 612}));
  EXPECT_TRUE(gpt2_hf().spec().template_prefix.empty() && gpt2_hf().spec().template_suffix.empty());
}

TEST(HfTokenizer, Gpt2TokenizerJsonMatchesGpt2FilesOnTinyShakespeare) {
  MG_REQUIRE_SHARED_DATA();
  const std::string text = read_file(shared_data() / "corpus" / "tinyshakespeare.txt");
  const Tokenizer files = Tokenizer::load(shared_data() / "gpt2");
  const Ids want = files.encode(text, SpecialTokens::AsText, 2);
  EXPECT_TRUE(gpt2_hf().encode(text, SpecialTokens::AsText, 2) == want);
  EXPECT_EQ(gpt2_hf().decode(want), text);
}

TEST(HfTokenizer, BothMergeSpellingsGiveTheSameIds) {
  MG_REQUIRE_SHARED_DATA();
  const Tokenizer legacy = tokenizer_from_json(mgtest::gpt2_tokenizer_json(true));
  EXPECT_EQ(legacy.model().merges, gpt2_hf().model().merges);
  const std::string text = read_file(shared_data() / "corpus" / "tinyshakespeare.txt").substr(0, 100000);
  EXPECT_TRUE(legacy.encode(text, SpecialTokens::AsText) == gpt2_hf().encode(text, SpecialTokens::AsText));
}

// ---- a GPT-4 / Llama-3 style file ----

TEST(HfTokenizer, SplitPatternAddedTokensAndTemplateMatchTokenizers) {
  MG_REQUIRE_SHARED_DATA();
  const Tokenizer& t = gpt4_style();
  EXPECT_EQ(t.vocab_size(), 50260u);
  struct Case {
    std::string text;
    Ids with_template;  // tokenizers 0.23.3: encode(text).ids
    Ids as_text;        // tokenizers 0.23.3: encode_special_tokens = True, add_special_tokens=False
    std::string skipped = text;  // tokenizers 0.23.3: decode(with_template, skip_special_tokens=True)
  };
  const std::vector<Case> cases = {
      {"Hello world", {50257, 15496, 995}, {15496, 995}},
      {"I'M here,\n\nthey'LL go  123456 ok",
       {50257, 40, 6, 44, 994, 11, 628, 9930, 6, 3069, 467, 50259, 10163, 29228, 12876},
       {40, 6, 44, 994, 11, 628, 9930, 6, 3069, 467, 50259, 10163, 29228, 12876}},
      {"<|start_of_role|>user<|end_of_role|>Hi<|endoftext|>",
       {50257, 50257, 7220, 50258, 17250, 50256},
       {27, 91, 9688, 62, 1659, 62, 18090, 91, 29, 7220, 27, 91, 437, 62, 1659, 62, 18090, 91, 29, 17250, 27, 91, 437,
        1659, 5239, 91, 29},
       "userHi"},
      {"  x   y\t\n z", {50257, 50259, 87, 50259, 331, 197, 198, 1976}, {50259, 87, 50259, 331, 197, 198, 1976}},
      {"It's 2024: caf\xC3\xA9 \xC3\xBC" "ber \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xF0\x9F\x99\x82!!\n\n\n  end  ",
       {50257, 1026, 338, 220, 19004, 19, 25, 40304, 6184, 120, 527, 10545, 245, 98, 17312, 105, 45739, 252, 32485,
        3228, 628, 198, 50259, 437, 50259},
       {1026, 338, 220, 19004, 19, 25, 40304, 6184, 120, 527, 10545, 245, 98, 17312, 105, 45739, 252, 32485, 3228,
        628, 198, 50259, 437, 50259}},
      {"'\xC5\xBFx '\xC5\xBF", {50257, 6, 129, 123, 87, 705, 129, 123}, {6, 129, 123, 87, 705, 129, 123}},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(t.apply_template(t.encode(c.text, SpecialTokens::Allowed)), c.with_template) << c.text;
    EXPECT_EQ(t.encode(c.text, SpecialTokens::AsText), c.as_text) << c.text;
    EXPECT_EQ(t.decode(c.with_template, true), c.skipped) << c.text;
    EXPECT_EQ(t.decode(c.as_text), c.text) << c.text;
  }
  // skip_special_tokens drops specials but keeps the non-special added token "  ".
  EXPECT_EQ(t.decode(Ids{50257, 7220, 50258, 50259, 17250, 50256}, true), "user  Hi");
  EXPECT_EQ(t.decode(Ids{50257, 7220, 50258}), "<|start_of_role|>user<|end_of_role|>");
}

TEST(HfTokenizer, SplitPatternThreadsAndCutsGiveTheSameIds) {
  MG_REQUIRE_SHARED_DATA();
  const std::string text = read_file(shared_data() / "corpus" / "tinyshakespeare.txt");
  const Ids one = gpt4_style().encode(text, SpecialTokens::AsText, 1);
  EXPECT_TRUE(gpt4_style().encode(text, SpecialTokens::AsText, 3) == one);
  EXPECT_EQ(gpt4_style().decode(one), text);
  // "foo.\n\nbar": the pattern keeps ".\n\n" together, so GPT-2's cut after '.' is not safe here.
  EXPECT_EQ(gpt4_style().next_safe_split("a.\nb\nc", 0), 4u);
}

TEST(HfTokenizer, AddedTokenOptionsMatchTokenizers) {
  MG_REQUIRE_SHARED_DATA();
  json j = mgtest::gpt4_style_tokenizer_json();
  // <|endoftext|> lstrip, <|start_of_role|> rstrip, <|end_of_role|> both, "  " single_word; "the"
  // (single word) and "ab" (lstrip + rstrip, not normalized) are vocabulary tokens, so tokenizers gives
  // them the vocabulary's ids 1169 and 397 whatever the file says.
  j["added_tokens"][0]["lstrip"] = true;
  j["added_tokens"][1]["rstrip"] = true;
  j["added_tokens"][2]["lstrip"] = j["added_tokens"][2]["rstrip"] = true;
  j["added_tokens"][3]["single_word"] = true;
  j["added_tokens"].push_back({{"id", 50260}, {"content", "the"}, {"single_word", true}, {"lstrip", false},
                               {"rstrip", false}, {"normalized", true}, {"special", false}});
  j["added_tokens"].push_back({{"id", 50261}, {"content", "ab"}, {"single_word", false}, {"lstrip", true},
                               {"rstrip", true}, {"normalized", false}, {"special", false}});
  const Tokenizer t = tokenizer_from_json(j);
  EXPECT_EQ(t.vocab_size(), 50260u);
  EXPECT_EQ(t.special_id("the"), 1169u);
  // tokenizers 0.23.3
  EXPECT_EQ(t.apply_template(t.encode("x <|end_of_role|> the ab  theab\nab", SpecialTokens::Allowed)),
            (Ids{50257, 87, 50258, 1169, 397, 1169, 397, 397}));
  EXPECT_EQ(t.encode("x <|end_of_role|> the ab  theab\nab", SpecialTokens::AsText),
            (Ids{87, 1279, 91, 437, 62, 1659, 62, 18090, 91, 29, 220, 1169, 397, 1169, 397, 397}));
  EXPECT_EQ(t.encode("I'M here,\n\nthey'LL go  123456 ok", SpecialTokens::Allowed),
            (Ids{40, 6, 44, 994, 11, 628, 9930, 6, 3069, 467, 220, 220, 10163, 29228, 12876}));
  EXPECT_EQ(t.encode("  x   y\t\n z", SpecialTokens::Allowed), (Ids{220, 2124, 220, 220, 331, 197, 198, 1976}));
  // A combining mark is a word character (\w) next to the single-word "  ".
  EXPECT_EQ(t.encode("  Z\xE3\x80\x80\xCC\xA3\xCC\x87  )", SpecialTokens::Allowed),
            (Ids{220, 1168, 5099, 222, 136, 96, 136, 229, 220, 1267}));
  EXPECT_TRUE(is_word_char(0x0301) && is_word_char('_') && is_word_char(0x0663) && !is_word_char(0x3000));
}

// NFC: the Unicode 15.0 NormalizationTest.txt passes in full (checked when the tables were made);
// these are some of its lines, then a tokenizer.json with the NFC normalizer (GPT-NeoX's).
TEST(HfTokenizer, NfcNormalizer) {
  EXPECT_EQ(to_nfc("cafe\xCC\x81"), "caf\xC3\xA9");                        // e + U+0301 -> U+00E9
  EXPECT_EQ(to_nfc("A\xCC\x8A\xCC\xA3"), "\xE1\xBA\xA0\xCC\x8A");            // reordered, then composed
  EXPECT_EQ(to_nfc("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8"), "\xEA\xB0\x81"); // Hangul L V T -> U+AC01
  EXPECT_EQ(to_nfc("\xE2\x84\xAB"), "\xC3\x85");                             // ANGSTROM SIGN -> U+00C5
  EXPECT_EQ(to_nfc("\xE0\xA5\x98"), "\xE0\xA4\x95\xE0\xA4\xBC");             // U+0958 is excluded from composition
  EXPECT_EQ(to_nfc("e\xFF\xCC\x81"), "e\xFF\xCC\x81");                       // an invalid byte blocks
  EXPECT_EQ(to_nfc("plain ASCII"), "plain ASCII");
  MG_REQUIRE_SHARED_DATA();
  json j = mgtest::gpt2_tokenizer_json();
  j["normalizer"] = {{"type", "NFC"}};
  j["added_tokens"].push_back({{"id", 50257}, {"content", "Cafe\xCC\x81!"}, {"single_word", false}, {"lstrip", false},
                               {"rstrip", false}, {"normalized", true}, {"special", false}});
  j["added_tokens"].push_back({{"id", 50258}, {"content", "x\xCC\x81y"}, {"single_word", false}, {"lstrip", false},
                               {"rstrip", false}, {"normalized", false}, {"special", false}});
  const Tokenizer t = tokenizer_from_json(j);
  // tokenizers 0.23.3; the normalized added token matches its NFC form (both spellings), the raw one
  // only its own spelling, before normalization.
  const std::string text =
      "cafe\xCC\x81 Cafe\xCC\x81! Caf\xC3\xA9! x\xCC\x81y \xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8 A\xCC\x8A\xCC\xA3 "
      "q\xCC\x87\xCC\xA3";
  EXPECT_EQ(t.encode(text, SpecialTokens::Allowed),
            (Ids{66, 1878, 2634, 220, 50257, 220, 50257, 220, 50258, 220, 166, 108, 223, 28053, 118, 254, 136, 232, 10662,
                 136, 96, 136, 229}));
  EXPECT_EQ(t.encode("e\xCC\x81\xCC\x81", SpecialTokens::Allowed), (Ids{2634, 136, 223}));
}

TEST(HfTokenizer, IgnoreMergesAndPrefixSpace) {
  MG_REQUIRE_SHARED_DATA();
  json j = mgtest::gpt2_tokenizer_json();
  j["pre_tokenizer"]["add_prefix_space"] = true;
  const Tokenizer prefixed = tokenizer_from_json(j);
  // Each stretch between added tokens gets its own space (tokenizers 0.23.3).
  EXPECT_EQ(prefixed.encode("Hello<|endoftext|>world", SpecialTokens::Allowed), (Ids{18435, 50256, 995}));
  EXPECT_EQ(prefixed.encode("", SpecialTokens::Allowed), Ids{});
  EXPECT_EQ(prefixed.next_safe_split("ab\ncd", 0), 5u);  // no safe cut: a cut would add a space
  j = mgtest::gpt2_tokenizer_json();
  j["model"]["ignore_merges"] = true;
  const Tokenizer whole = tokenizer_from_json(j);
  const std::string text = read_file(shared_data() / "corpus" / "tinyshakespeare.txt").substr(0, 20000);
  EXPECT_EQ(whole.decode(whole.encode(text, SpecialTokens::AsText)), text);
}

// ---- the folder: BOS / EOS and file choice ----

TEST(HfTokenizer, BosEosFromConfigsGenerationConfigAndTokenizerConfig) {
  MG_REQUIRE_SHARED_DATA();
  TempDir dir;
  mgtest::write_tokenizer_json(dir.path(), mgtest::gpt4_style_tokenizer_json());
  write_file(dir / "vocab.json", "{}");  // tokenizer.json wins over the GPT-2 file pair
  write_file(dir / "merges.txt", "");
  {
    const Tokenizer t = Tokenizer::load(dir.path());
    EXPECT_EQ(t.spec().template_prefix, Ids{50257});
    EXPECT_FALSE(t.bos_id());
    EXPECT_TRUE(t.eos_ids().empty());
  }
  write_file(dir / "tokenizer_config.json",
             R"({"bos_token": "<|start_of_role|>", "eos_token": {"content": "<|endoftext|>", "special": true}})");
  EXPECT_EQ(Tokenizer::load(dir.path()).bos_id(), 50257u);
  EXPECT_EQ(Tokenizer::load(dir.path()).eos_ids(), Ids{50256});
  write_file(dir / "config.json", R"({"bos_token_id": 50256, "eos_token_id": [50258, 50256], "x": Infinity})");
  EXPECT_EQ(Tokenizer::load(dir.path()).bos_id(), 50256u);
  EXPECT_EQ(Tokenizer::load(dir.path()).eos_ids(), (Ids{50258, 50256}));
  EXPECT_EQ(Tokenizer::load(dir.path()).eot_id(), 50258u);
  write_file(dir / "generation_config.json", R"({"eos_token_id": 50257, "bos_token_id": null})");
  EXPECT_EQ(Tokenizer::load(dir.path()).eos_ids(), Ids{50257});
  EXPECT_EQ(Tokenizer::load(dir.path()).bos_id(), 50256u);
  std::filesystem::remove(dir / "generation_config.json");
  write_file(dir / "config.json", R"({"eos_token_id": 90000})");
  expect_error([&] { Tokenizer::load(dir.path()); }, "end-of-text id 90000 is outside the vocabulary");
  write_file(dir / "config.json", R"({"eos_token_id": "two"})");
  expect_error([&] { Tokenizer::load(dir.path()); }, "\"eos_token_id\" is \"two\"; expected a token id");
}

// ---- what is refused ----

TEST(HfTokenizer, UnsupportedKindsGiveOneClearLine) {
  MG_REQUIRE_SHARED_DATA();
  const json base = mgtest::gpt2_tokenizer_json();
  auto refused = [&](const std::function<void(json&)>& change, const std::string& fragment) {
    json j = base;
    change(j);
    const std::string message = mgtest::error_of([&] { tokenizer_from_json(j); });
    EXPECT_TRUE(mgtest::has(message, fragment)) << "expected '" << fragment << "' in: " << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  };
  refused([](json& j) { j["model"] = {{"type", "WordPiece"}, {"vocab", json::object()}}; },
          "model type \"WordPiece\" is not supported. Magellano reads BPE tokenizer.json files");
  refused([](json& j) { j["model"] = {{"type", "Unigram"}, {"vocab", json::array()}}; }, "model type \"Unigram\" is not supported");
  refused([](json& j) { j["model"]["byte_fallback"] = true; }, "\"byte_fallback\": true behind a ByteLevel pre-tokenizer");
  refused([](json& j) { j["model"]["dropout"] = 0.1; }, "BPE dropout 0.1 is not supported");
  refused([](json& j) { j["model"]["continuing_subword_prefix"] = "##"; }, "\"continuing_subword_prefix\" \"##\" is not supported");
  refused([](json& j) { j["normalizer"] = {{"type", "NFKC"}}; }, "the normalizer {\"type\":\"NFKC\"} (only NFC, Prepend, Replace of a string, or a Sequence of them) is not supported");
  refused([](json& j) { j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "_"}}; },
          "a ByteLevel decoder without a ByteLevel pre-tokenizer");  // Metaspace: SentencePiece-style
  refused([](json& j) { j["pre_tokenizer"] = nullptr; }, "a ByteLevel decoder without a ByteLevel pre-tokenizer");
  refused([](json& j) { j["pre_tokenizer"] = {{"type", "Whitespace"}}; }, "the pre-tokenizer type \"Whitespace\" is not supported");
  refused([](json& j) {
    j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "\\d+"}}}, {"behavior", "Isolated"}, {"invert", false}};
  }, "the escape \\d");
  refused([](json& j) { j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {j["pre_tokenizer"], j["pre_tokenizer"]}}}; },
          "a pre-tokenizer (ByteLevel) after ByteLevel is not supported");
  refused([](json& j) { j["decoder"] = {{"type", "WordPiece"}}; }, "the decoder type \"WordPiece\" is not supported");
  refused([](json& j) { j["post_processor"] = {{"type", "RobertaProcessing"}}; }, "post-processor type \"RobertaProcessing\"");
  refused([](json& j) { j["version"] = "2.0"; }, "version \"2.0\" (only \"1.0\")");
  refused([](json& j) { j["model"]["merges"][0] = "Ġ t x"; }, "merge 0 \"Ġ t x\" is not \"<left> <right>\"");
  refused([](json& j) { j["model"]["merges"][5] = {"Ġ", "zzzz"}; }, "merge 5 (\"Ġ\", \"zzzz\") uses or makes a token missing");
  refused([](json& j) {
    j["model"]["vocab"].erase("!");
    j["model"]["merges"] = json::array();
  }, "no token for byte 33");
  refused([](json& j) { j.erase("model"); }, "the file has no \"model\"");
  refused([](json& j) { j["model"]["vocab"]["zzzz"] = 2000000000; }, "token ids go up to 2000000000 for only 50259 tokens");
  expect_error([] { parse_hf_tokenizer_json("{\"model\": {", "x/tokenizer.json"); }, "x/tokenizer.json is not valid JSON");
}
