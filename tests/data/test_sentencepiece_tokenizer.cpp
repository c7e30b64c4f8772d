// SentencePiece-style tokenizer.json (Llama 2 / Mistral / Jamba): a hand-made vocabulary in every
// spelling (legacy normalizer; Metaspace with each prepend scheme, split, its own decoder) against ids
// and texts from Hugging Face `tokenizers`; byte fallback, unk fusing, merge order (a reversed merge
// list is caught), added tokens, template, BOS / EOS / pad from the folder; one clear line for what is
// refused; and the GGUF vocabulary read back, with llama.cpp's SPM tokenizer (the tests' own copy,
// llama_spm_reference.hpp) reproducing the BPE from the exported scores.
//
// Expected values marked "tokenizers 0.23.3" were made with Hugging Face `tokenizers` 0.23.3 (pip) on
// the same files (tests/support/spm_tokenizer_files.hpp): Tokenizer.encode(text).ids and
// Tokenizer.decode(ids, skip_special_tokens=...). scripts/check_hf_tokenizer.py repeats such checks
// on SentencePiece models trained and converted with sentencepiece and transformers.
#include <gtest/gtest.h>

#include "error_text.hpp"
#include "gguf_reader.hpp"
#include "hf_tokenizer_files.hpp"
#include "llama_spm_reference.hpp"
#include "magellano/data/gguf_vocab.hpp"
#include "magellano/data/hf_tokenizer_json.hpp"
#include "magellano/data/tokenizer.hpp"
#include "magellano/runtime/error.hpp"
#include "shared_data.hpp"
#include "spm_tokenizer_files.hpp"

using namespace magellano;
using namespace magellano::data;
using mgdata::read_file;
using mgdata::shared_data;
using mgdata::TempDir;
using mgdata::write_file;
using mgtest::expect_error;
using mgtest::tokenizer_from_json;
using mgtest::SpmStyle;
using Ids = std::vector<uint32_t>;
using nlohmann::json;

namespace {

struct Case {
  std::string text;
  Ids ids;               // encode(text).ids: the template's <s> first
  std::string decoded;   // decode(ids, skip_special_tokens=False)
  std::string skipped;   // decode(ids, skip_special_tokens=True)
};

void check(const Tokenizer& t, const std::vector<Case>& cases, const std::string& style) {
  for (const Case& c : cases) {
    EXPECT_EQ(t.apply_template(t.encode(c.text, SpecialTokens::Allowed)), c.ids) << style << ": " << c.text;
    EXPECT_EQ(t.decode(c.ids), c.decoded) << style << ": " << c.text;
    EXPECT_EQ(t.decode(c.ids, true), c.skipped) << style << ": " << c.text;
  }
}

const std::string kTab = "Hello\tthe \xE6\x97\xA5\xE6\x9C\xAC \xC3\xA9!";  // 日本 é
const std::string kEmoji = "H\xC3\xA9llo wor\xF0\x9F\x99\x82ld";        // Héllo wor🙂ld
const Ids kTabIds = {1, 259, 279, 12, 261, 274, 259, 233, 154, 168, 233, 159, 175, 259, 272, 36};
const Ids kEmojiIds = {1, 259, 271, 272, 276, 264, 282, 243, 162, 156, 133, 283};

}  // namespace

// ---- encoding and decoding, every spelling (tokenizers 0.23.3) ----

TEST(SentencePieceTokenizer, LegacySpellingMatchesTokenizers) {
  const Tokenizer t = tokenizer_from_json(mgtest::spm_tokenizer_json());
  EXPECT_EQ(t.vocab_size(), 291u);
  check(t,
        {{"Hello the world", {1, 259, 279, 275, 284}, "<s> Hello the world", "Hello the world"},
         {"  Hello  world ", {1, 285, 259, 279, 259, 284, 259}, "<s>   Hello  world ", "  Hello  world "},
         {kTab, kTabIds, "<s> " + kTab, kTab},
         {"an  a n", {1, 287, 285, 265, 259, 266}, "<s> an  a n", "an  a n"},
         // Prepend puts a "▁" before every stretch between unnormalized added tokens.
         {"<s>Hello<|im_start|>the</s> world", {1, 1, 259, 279, 289, 275, 2, 259, 284},
          "<s><s> Hello<|im_start|> the</s>  world", "Hello the  world"},
         // The normalized added token <tool> is matched as "▁<tool>", which this text never holds.
         {"x<tool> the<tool>", {1, 259, 123, 63, 261, 264, 264, 263, 65, 275, 63, 261, 264, 264, 263, 65},
          "<s> x<tool> the<tool>", "x<tool> the<tool>"},
         {" ", {1, 285}, "<s>  ", " "},
         {"", {1}, "<s>", ""},
         {kEmoji, kEmojiIds, "<s> " + kEmoji, kEmoji}},
        "legacy");
}

TEST(SentencePieceTokenizer, MetaspacePrependSchemesSplitAndDecoderMatchTokenizers) {
  const std::vector<Case> first = {
      {"Hello the world", {1, 259, 279, 275, 284}, "<s> Hello the world", "Hello the world"},
      {"  Hello  world ", {1, 285, 279, 259, 284, 259}, "<s>  Hello  world ", " Hello  world "},
      {kTab, kTabIds, "<s> " + kTab, kTab},
      {"an  a n", {1, 287, 285, 265, 259, 266}, "<s> an  a n", "an  a n"},
      // "first": only the stretch at the start of the text gets a "▁".
      {"<s>Hello<|im_start|>the</s> world", {1, 1, 279, 289, 261, 274, 2, 284},
       "<s><s>Hello<|im_start|>the</s> world", "Hellothe world"},
      {"x<tool> the<tool>", {1, 259, 123, 290, 275, 290}, "<s> x<tool> the<tool>", "x<tool> the<tool>"},
      {" ", {1, 259}, "<s> ", ""},
      {"", {1}, "<s>", ""},
      {kEmoji, kEmojiIds, "<s> " + kEmoji, kEmoji}};
  check(tokenizer_from_json(mgtest::spm_tokenizer_json({false, "first", false, false})), first, "first");

  std::vector<Case> always = first;
  always[4] = {"<s>Hello<|im_start|>the</s> world", {1, 1, 259, 279, 289, 275, 2, 284},
               "<s><s> Hello<|im_start|> the</s> world", "Hello the world"};
  check(tokenizer_from_json(mgtest::spm_tokenizer_json({false, "always", false, false})), always, "always");

  check(tokenizer_from_json(mgtest::spm_tokenizer_json({false, "never", false, false})),
        {{"Hello the world", {1, 279, 275, 284}, "<s>Hello the world", "Hello the world"},
         {"  Hello  world ", {1, 285, 279, 259, 284, 259}, "<s>  Hello  world ", " Hello  world "},
         {"an  a n", {1, 286, 285, 265, 259, 266}, "<s>an  a n", "an  a n"},
         {"x<tool> the<tool>", {1, 123, 290, 275, 290}, "<s>x<tool> the<tool>", "x<tool> the<tool>"},
         {kEmoji, {1, 271, 272, 276, 264, 282, 243, 162, 156, 133, 283}, "<s>" + kEmoji, kEmoji}},
        "never");

  // split: each "▁" starts a piece, so "▁▁" is never made.
  check(tokenizer_from_json(mgtest::spm_tokenizer_json({false, "first", true, false})),
        {{"  Hello  world ", {1, 259, 259, 279, 259, 284, 259}, "<s>  Hello  world ", " Hello  world "},
         {"an  a n", {1, 287, 259, 288, 259, 266}, "<s> an  a n", "an  a n"}},
        "split");

  // The Metaspace decoder has no byte fallback, and drops every "▁" of the first token.
  check(tokenizer_from_json(mgtest::spm_tokenizer_json({false, "first", false, true})),
        {{"  Hello  world ", {1, 285, 279, 259, 284, 259}, "<s>  Hello  world ", "Hello  world "},
         {kTab, kTabIds, "<s> Hello<0x09>the <0xE6><0x97><0xA5><0xE6><0x9C><0xAC> \xC3\xA9<0x21>",
          "Hello<0x09>the <0xE6><0x97><0xA5><0xE6><0x9C><0xAC> \xC3\xA9<0x21>"},
         {"x<tool> the<tool>", {1, 259, 123, 290, 275, 290}, "<s> <0x78><tool> the<tool>", "<0x78><tool> the<tool>"}},
        "Metaspace decoder");
}

TEST(SentencePieceTokenizer, DecodingFusesBytesAndStripsOneSpace) {
  const Tokenizer t = tokenizer_from_json(mgtest::spm_tokenizer_json());
  // tokenizers 0.23.3: an invalid byte run is one U+FFFD per byte token.
  EXPECT_EQ(t.decode(Ids{3 + 0xE6, 3 + 0x41, 3 + 0xE6, 3 + 0x97, 275, 3 + 0xFF}),
            "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD the\xEF\xBF\xBD");
  EXPECT_EQ(t.decode(Ids{259, 259, 275}), "  the");
  EXPECT_EQ(t.decode(Ids{275, 1, 275}), "the<s> the");
  EXPECT_EQ(t.decode(Ids{1, 275}, true), "the");
  const Tokenizer m = tokenizer_from_json(mgtest::spm_tokenizer_json({false, "first", false, true}));
  EXPECT_EQ(m.decode(Ids{285, 275, 285}), " the  ");
  EXPECT_EQ(tokenizer_from_json(mgtest::spm_tokenizer_json({false, "never", false, true})).decode(Ids{285, 275, 285}),
            "   the  ");
  // Token by token (what generation streams): "▁" as a space, a byte token as its byte.
  EXPECT_EQ(t.token_bytes(275), " the");
  EXPECT_EQ(t.token_bytes(3 + 0x0A), "\n");
  EXPECT_EQ(t.token_bytes(3 + 0xE6), "\xE6");
  EXPECT_EQ(t.token_bytes(289), "<|im_start|>");
  // A byte that is not UTF-8 is a character of its own and falls back to its byte token.
  EXPECT_EQ(t.encode("the\xFF", SpecialTokens::Allowed), (Ids{275, 3 + 0xFF}));
  // Round trips on the shared corpus (no added tokens there): decode(encode(text)) == text.
  MG_REQUIRE_SHARED_DATA();
  const std::string text = read_file(shared_data() / "corpus" / "tinyshakespeare.txt").substr(0, 30000) +
                           " caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xF0\x9F\x99\x82\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD";
  for (const SpmStyle& s : {SpmStyle{}, SpmStyle{false, "first", false, false}, SpmStyle{false, "never", true, false}}) {
    const Tokenizer tok = tokenizer_from_json(mgtest::spm_tokenizer_json(s));
    EXPECT_EQ(tok.decode(tok.encode(text, SpecialTokens::AsText, 2)), text);
  }
}

TEST(SentencePieceTokenizer, UnkFusingAndMissingBytesMatchTokenizers) {
  json j = mgtest::spm_tokenizer_json();
  j["model"]["byte_fallback"] = false;
  const std::string jp = "\xE6\x97\xA5\xE6\x9C\xAC";  // 日本
  EXPECT_EQ(tokenizer_from_json(j).encode(jp + "x the", SpecialTokens::Allowed),
            (Ids{259, 0, 275}));  // tokenizers 0.23.3
  EXPECT_EQ(tokenizer_from_json(j).encode("a\xE6\x97\xA5", SpecialTokens::Allowed), (Ids{288, 0}));
  j["model"]["fuse_unk"] = false;
  EXPECT_EQ(tokenizer_from_json(j).encode(jp + "x the", SpecialTokens::Allowed), (Ids{259, 0, 0, 0, 275}));
  j["model"]["unk_token"] = nullptr;  // no unk: the characters are dropped
  EXPECT_EQ(tokenizer_from_json(j).encode(jp + "x the", SpecialTokens::Allowed), (Ids{259, 275}));
  // A character whose bytes are not all tokens is unk; tokenizers adds a pending unk only before the
  // next vocabulary character, so it lands after the byte tokens of "x" (tokenizers 0.23.3).
  j = mgtest::spm_tokenizer_json();
  j["model"]["vocab"].erase("<0xE6>");
  j["model"]["vocab"]["<0xE6-gone>"] = 233;
  EXPECT_EQ(tokenizer_from_json(j).encode("\xE6\x97\xA5x\xE6\x9C\xAC the", SpecialTokens::Allowed),
            (Ids{259, 123, 0, 275}));
}

TEST(SentencePieceTokenizer, MergesApplyInRankOrderAndAReversedListIsCaught) {
  const Ids want = {1, 287, 285, 265, 259, 266};  // tokenizers 0.23.3
  EXPECT_EQ(tokenizer_from_json(mgtest::spm_tokenizer_json()).apply_template(
                tokenizer_from_json(mgtest::spm_tokenizer_json()).encode("an  a n", SpecialTokens::Allowed)),
            want);
  json j = mgtest::spm_tokenizer_json();
  std::reverse(j["model"]["merges"].begin(), j["model"]["merges"].end());
  const Tokenizer broken = tokenizer_from_json(j);
  const Ids got = broken.apply_template(broken.encode("an  a n", SpecialTokens::Allowed));
  EXPECT_NE(got, want);
  EXPECT_EQ(got, (Ids{1, 287, 259, 288, 259, 266}));  // tokenizers 0.23.3 on the reversed file
}

// ---- the folder ----

TEST(SentencePieceTokenizer, FolderWithConfigsLoadsWithBosEosAndPad) {
  TempDir dir;
  write_file(dir / "tokenizer.json", mgtest::spm_tokenizer_json().dump());
  write_file(dir / "config.json", R"({"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0})");
  const Tokenizer t = Tokenizer::load(dir.path());
  EXPECT_TRUE(t.spec().sentencepiece.has_value());
  EXPECT_EQ(t.bos_id(), 1u);
  EXPECT_EQ(t.eos_ids(), Ids{2});
  EXPECT_EQ(t.spec().pad_id, 0u);
  EXPECT_EQ(t.spec().template_prefix, Ids{1});
  write_file(dir / "config.json", "{}");
  write_file(dir / "tokenizer_config.json", R"({"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<unk>"})");
  const Tokenizer u = Tokenizer::load(dir.path());
  EXPECT_EQ(u.bos_id(), 1u);
  EXPECT_EQ(u.eos_ids(), Ids{2});
  EXPECT_EQ(u.spec().pad_id, 0u);
  // No safe cuts (a stretch is one BPE word): threads give the same ids.
  EXPECT_EQ(u.next_safe_split("ab\ncd", 0), 5u);
}

// ---- what is refused ----

TEST(SentencePieceTokenizer, UnsupportedKindsGiveOneClearLine) {
  const json base = mgtest::spm_tokenizer_json({false, "first", false, false});
  auto refused = [&](const std::function<void(json&)>& change, const std::string& fragment) {
    json j = base;
    change(j);
    const std::string message = mgtest::error_of([&] { tokenizer_from_json(j); });
    EXPECT_TRUE(mgtest::has(message, fragment)) << "expected '" << fragment << "' in: " << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  };
  refused([](json& j) { j["model"] = {{"type", "Unigram"}, {"vocab", json::array()}, {"byte_fallback", true}}; },
          "model type \"Unigram\" is not supported");
  refused([](json& j) { j["pre_tokenizer"]["prepend_scheme"] = "sometimes"; },
          "the Metaspace prepend_scheme \"sometimes\" is unknown (expected always, first or never)");
  refused([](json& j) { j["pre_tokenizer"]["add_prefix_space"] = false; }, "add_prefix_space false does not match");
  refused([](json& j) { j["pre_tokenizer"]["replacement"] = "__"; }, "the Metaspace replacement \"__\" is not one character");
  refused([](json& j) { j["normalizer"] = {{"type", "Replace"}, {"pattern", {{"Regex", " +"}}}, {"content", "_"}}; },
          "the Replace normalizer with the pattern {\"Regex\":\" +\"} (only {\"String\": ...}) is not supported");
  refused([](json& j) { j["normalizer"] = {{"type", "NFKC"}}; }, "the normalizer {\"type\":\"NFKC\"}");
  refused([](json& j) { j["decoder"] = {{"type", "ByteLevel"}}; }, "a ByteLevel decoder without a ByteLevel pre-tokenizer");
  refused([](json& j) { j["decoder"] = {{"type", "WordPiece"}}; }, "the decoder type \"WordPiece\" in a SentencePiece-style");
  refused([](json& j) { j["decoder"] = nullptr; }, "a SentencePiece-style tokenizer.json without a decoder");
  refused([](json& j) { j["model"]["unk_token"] = "<nope>"; }, "the unk_token \"<nope>\" is not in the vocabulary");
  refused([](json& j) {
    j["pre_tokenizer"] = {{"type", "Whitespace"}};
    j["model"]["byte_fallback"] = false;
  }, "the pre-tokenizer type \"Whitespace\" is not supported");
  refused([](json& j) {
    j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
    j["decoder"] = {{"type", "ByteLevel"}};
  }, "\"byte_fallback\": true behind a ByteLevel pre-tokenizer");
  refused([](json& j) { j["model"]["merges"][0] = {"\xE2\x96\x81", "zz"}; }, "uses or makes a token missing");
}

// ---- GGUF ----

namespace {

mgtest::GgufFile gguf_of(const Tokenizer& t, int64_t vocab_size, const TempDir& dir) {
  io::GgufWriter w;
  add_gguf_vocab(w, t, vocab_size);
  w.write(dir / "vocab.gguf", [](size_t, std::vector<uint8_t>&) {});
  return mgtest::read_gguf(dir / "vocab.gguf");
}

}  // namespace

TEST(SentencePieceTokenizer, GgufVocabularyIsLlamaCppsSpmWithScoresFromTheMerges) {
  TempDir dir;
  write_file(dir / "tokenizer.json", mgtest::spm_tokenizer_json().dump());
  write_file(dir / "config.json", R"({"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0})");
  const Tokenizer t = Tokenizer::load(dir.path());
  const mgtest::GgufFile f = gguf_of(t, 300, dir);
  const auto& kv = f.kv;
  EXPECT_EQ(kv.at("tokenizer.ggml.model").str, "llama");
  EXPECT_EQ(kv.at("tokenizer.ggml.pre").str, "default");
  const auto& tokens = kv.at("tokenizer.ggml.tokens").strings;
  const auto& scores = kv.at("tokenizer.ggml.scores").numbers;
  const auto& types = kv.at("tokenizer.ggml.token_type").ints;
  ASSERT_EQ(tokens.size(), 300u);
  ASSERT_EQ(scores.size(), 300u);
  ASSERT_EQ(types.size(), 300u);
  EXPECT_EQ(kv.at("tokenizer.ggml.scores").elem_type, 6u);  // FLOAT32
  EXPECT_EQ(tokens[0], "<unk>");
  EXPECT_EQ(types[0], 2);  // unknown
  EXPECT_EQ(tokens[1], "<s>");
  EXPECT_EQ(types[1], 3);  // control
  EXPECT_EQ(tokens[3 + 0x0A], "<0x0A>");
  EXPECT_EQ(types[3 + 0x0A], 6);  // byte
  EXPECT_EQ(tokens[275], "\xE2\x96\x81the");
  EXPECT_EQ(types[275], 1);
  EXPECT_EQ(tokens[289], "<|im_start|>");
  EXPECT_EQ(types[289], 3);
  EXPECT_EQ(tokens[290], " <tool>");  // normalized to "▁<tool>"; the converter writes a user-defined "▁" as ' '
  EXPECT_EQ(types[290], 4);
  EXPECT_EQ(tokens[291], "[PAD291]");
  EXPECT_EQ(types[291], 5);
  // Scores: -(1 + the lowest rank making the token); characters and bytes 0; added tokens -1000.
  EXPECT_EQ(scores[273], -1.0);   // ▁t, rank 0
  EXPECT_EQ(scores[275], -3.0);   // ▁the, rank 2
  EXPECT_EQ(scores[287], -15.0);  // ▁an, ranks 14 and 16
  EXPECT_EQ(scores[288], -16.0);  // ▁a, rank 15
  EXPECT_EQ(scores[259], 0.0);
  EXPECT_EQ(scores[3], 0.0);
  EXPECT_EQ(scores[1], -1000.0);
  EXPECT_EQ(scores[299], -10000.0);
  EXPECT_EQ(kv.at("tokenizer.ggml.bos_token_id").uinteger, 1u);
  EXPECT_EQ(kv.at("tokenizer.ggml.eos_token_id").uinteger, 2u);
  EXPECT_EQ(kv.at("tokenizer.ggml.unknown_token_id").uinteger, 0u);
  EXPECT_EQ(kv.at("tokenizer.ggml.padding_token_id").uinteger, 0u);
  EXPECT_TRUE(kv.at("tokenizer.ggml.add_bos_token").boolean);
  EXPECT_FALSE(kv.at("tokenizer.ggml.add_eos_token").boolean);
  EXPECT_TRUE(kv.at("tokenizer.ggml.add_space_prefix").boolean);
  EXPECT_EQ(kv.count("tokenizer.ggml.merges"), 0u);

  // llama.cpp's SPM tokenizer on these tokens and scores gives the BPE's ids.
  for (const std::string& text : std::vector<std::string>{"Hello the world", "  Hello  world ", "an  a n", kTab, kEmoji, "x the an a"}) {
    const Ids ours = t.encode(text, SpecialTokens::AsText);
    EXPECT_EQ(mgtest::llama_spm_tokenize(tokens, scores, text, true), ours) << text;
  }
  // ... and the same scores in the reversed merge order would not.
  json j = mgtest::spm_tokenizer_json();
  std::reverse(j["model"]["merges"].begin(), j["model"]["merges"].end());
  const mgtest::GgufFile r = gguf_of(tokenizer_from_json(j), 291, dir);
  EXPECT_NE(mgtest::llama_spm_tokenize(r.kv.at("tokenizer.ggml.tokens").strings, r.kv.at("tokenizer.ggml.scores").numbers,
                                       "an  a n", true),
            t.encode("an  a n", SpecialTokens::AsText));

  // add_space_prefix per spelling; what llama.cpp cannot do is refused.
  EXPECT_FALSE(gguf_of(tokenizer_from_json(mgtest::spm_tokenizer_json({false, "never", false, false})), 291, dir)
                   .kv.at("tokenizer.ggml.add_space_prefix").boolean);
  json no_prepend = mgtest::spm_tokenizer_json();
  no_prepend["normalizer"]["normalizers"].erase(0);
  EXPECT_FALSE(gguf_of(tokenizer_from_json(no_prepend), 291, dir).kv.at("tokenizer.ggml.add_space_prefix").boolean);
  json nfc = mgtest::spm_tokenizer_json();
  nfc["normalizer"]["normalizers"].push_back({{"type", "NFC"}});
  expect_error([&] { gguf_of(tokenizer_from_json(nfc), 291, dir); },
               "llama.cpp's SPM tokenizer needs the normalizer Replace");
  expect_error(
      [&] { gguf_of(tokenizer_from_json(mgtest::spm_tokenizer_json({false, "first", true, false})), 291, dir); },
      "token 285 holds one inside");
}

TEST(SentencePieceTokenizer, LlamaCppSpmReproducesTheBpeOnAGpt2SizedVocabulary) {
  MG_REQUIRE_SHARED_DATA();
  const Tokenizer t = tokenizer_from_json(mgtest::spm_from_gpt2_tokenizer_json());
  TempDir dir;
  const mgtest::GgufFile f = gguf_of(t, static_cast<int64_t>(t.vocab_size()), dir);
  const auto& tokens = f.kv.at("tokenizer.ggml.tokens").strings;
  const auto& scores = f.kv.at("tokenizer.ggml.scores").numbers;
  const std::string corpus = read_file(shared_data() / "corpus" / "tinyshakespeare.txt");
  size_t checked = 0, mismatched = 0;
  for (size_t begin = 0; begin < 200000; begin += 2000) {  // 100 stretches of 2,000 bytes
    const std::string text = corpus.substr(begin, 2000);
    const Ids ours = t.encode(text, SpecialTokens::AsText);
    ++checked;
    if (mgtest::llama_spm_tokenize(tokens, scores, text, true) != ours) ++mismatched;
    EXPECT_EQ(t.decode(ours), text);
  }
  EXPECT_EQ(mismatched, 0u) << "of " << checked;
}
