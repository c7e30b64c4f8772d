// BPE tokenizer: GPT-2's (reproducing tiktoken's "gpt2" exactly) and the BPE tokenizers of Hugging
// Face tokenizer.json files (hf_tokenizer_json.hpp), reproducing `tokenizers` for what that file
// supports: byte-level ones, and SentencePiece-style ones (sentencepiece_bpe.hpp: Llama, Mistral,
// Jamba), where steps 2 and 3 below work on characters instead.
//
// encode: text (any bytes) -> ids (values < vocab_size()):
//   1. added tokens (added_tokens.hpp) become their ids and cut the text; with SpecialTokens::AsText
//      the special ones among them (GPT-2's <|endoftext|>, chat markers) are ordinary text; with a
//      normalizer the stretches between them are normalized (text_normalizer.hpp);
//   2. each stretch between them is cut into pieces by the pre-tokenizer (piece_splitter.hpp);
//   3. each piece's bytes are merged by rank (bpe_word), with a per-call cache of pieces seen;
//      with ignore_merges a piece that is itself a vocabulary token is that token.
// The post-processor's template (e.g. Llama-3's BOS first) is not part of encode: apply_template
// adds it, as `transformers` does for add_special_tokens=True.
// decode: ids -> the exact bytes that were encoded (invalid UTF-8 included); SentencePiece-style:
// the tokenizer.json decoder's text (token_decoder.hpp), as tokenizers decodes.
// Encoding with threads > 1 cuts big inputs at safe cuts (next_safe_split), so the result is
// identical to single-threaded encoding.
#pragma once
#include <array>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "magellano/data/added_tokens.hpp"
#include "magellano/data/bpe_model.hpp"
#include "magellano/data/piece_splitter.hpp"
#include "magellano/data/sentencepiece_bpe.hpp"
#include "magellano/data/text_normalizer.hpp"

namespace magellano::data {

enum class SpecialTokens { Allowed, AsText };

// Everything around the BPE vocabulary: GPT-2's files imply gpt2_spec(); tokenizer.json spells it.
struct TokenizerSpec {
  std::vector<AddedToken> added;                 // matched before pre-tokenization
  TextNormalizer normalizer;                     // tokenizer.json's normalizer (none: identity)
  PieceSplitter splitter;                        // the pre-tokenizer (byte-level)
  std::optional<SentencePieceSpec> sentencepiece;  // set: a SentencePiece-style BPE (model.tokens: each
                                                 // id's text, token_decoder.hpp's token_text)
  bool ignore_merges = false;                    // a piece found whole in the vocabulary is one token
  std::vector<uint32_t> template_prefix;         // ids the post-processor puts before a text (BOS)
  std::vector<uint32_t> template_suffix;         // ... and after it
  std::optional<uint32_t> bos_id;                // the model's beginning-of-text id, if any
  std::vector<uint32_t> eos_ids;                 // ids that end generation, preferred first
  std::optional<uint32_t> pad_id;                // the padding id, if the configs name one (GGUF export)
};

// GPT-2's files: every special id (<|...|>) an added special token, GPT-2's pre-tokenizer, no
// template, <|endoftext|> (when present) as the end-of-text id.
TokenizerSpec gpt2_spec(const BpeModel& model);

class PairTable;
class CharBpe;

class Tokenizer {
 public:
  explicit Tokenizer(BpeModel model);  // with gpt2_spec(model)
  // Throws magellano::Error when the model is not a byte-level BPE (a byte without a token, a merge
  // making no token; SentencePiece-style: a merge making no piece) or the spec names ids outside it.
  Tokenizer(BpeModel model, TokenizerSpec spec);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // Loads a tokenizer folder: tokenizer.json when the folder has one (hf_tokenizer_json.hpp), else
  // encoder.json + vocab.bpe or vocab.json + merges.txt (bpe_model.hpp). Throws magellano::Error
  // with one line for bad or unsupported files.
  static Tokenizer load(const std::filesystem::path& dir);

  size_t vocab_size() const { return model_.tokens.size(); }
  const BpeModel& model() const { return model_; }
  const TokenizerSpec& spec() const { return spec_; }
  // The id of added token `name` (e.g. "<|endoftext|>"), if there is one.
  std::optional<uint32_t> special_id(std::string_view name) const;
  // The end-of-text id: the first of eos_ids (GPT-2: <|endoftext|>).
  std::optional<uint32_t> eot_id() const;
  const std::vector<uint32_t>& eos_ids() const { return spec_.eos_ids; }
  std::optional<uint32_t> bos_id() const { return spec_.bos_id; }
  bool is_special(uint32_t id) const { return id < special_.size() && special_[id]; }

  // threads: 1 = this thread only; 0 = all hardware threads.
  std::vector<uint32_t> encode(std::string_view text, SpecialTokens special,
                               unsigned threads = 1) const;
  // Appends the ids of text to out (single-threaded).
  void encode_append(std::string_view text, SpecialTokens special,
                     std::vector<uint32_t>& out) const;
  // ids with the post-processor's template around them (template_prefix + ids + template_suffix).
  std::vector<uint32_t> apply_template(std::vector<uint32_t> ids) const;

  // Raw bytes of the ids, concatenated; skip_special leaves out special added tokens (as
  // skip_special_tokens=True). Throws magellano::Error for an id >= vocab_size().
  std::string decode(std::span<const uint32_t> ids, bool skip_special = false) const;
  // Raw bytes of one id (must be < vocab_size()); SentencePiece-style: the text it stands for after
  // other text ("▁the" -> " the", "<0x0A>" -> "\n").
  const std::string& token_bytes(uint32_t id) const { return model_.tokens[id]; }

  // Cuts where encoding text[0, p) and text[p, n) separately gives the ids of encoding text: the
  // first at or after `from` (text.size() if none), and the last in text (0 if none). GPT-2's
  // pre-tokenizer: pretokenizer.hpp's rule. Split patterns: a '\n' between ASCII letters or digits,
  // checked at load on probe strings (none if a probe fails, if a Split behavior merges across
  // pieces, if an added token holds '\n', with add_prefix_space, or for a SentencePiece-style BPE).
  size_t next_safe_split(std::string_view text, size_t from) const;
  size_t last_safe_split(std::string_view text) const;

 private:
  struct PieceCache;
  enum class CutRule { Gpt2, NewlineBetweenAlnum, None };
  void build_byte_level(const std::vector<bool>& outside);
  void check_spec_ids();
  void encode_piece(std::string_view piece, std::vector<uint32_t>& out, PieceCache& cache) const;
  static void remember(std::string_view piece, std::span<const uint32_t> ids, PieceCache& cache);
  void encode_with_cache(std::string_view text, SpecialTokens special, std::vector<uint32_t>& out,
                         PieceCache& cache) const;
  bool is_safe_cut(std::string_view text, size_t p) const;
  CutRule choose_cut_rule() const;

  BpeModel model_;
  TokenizerSpec spec_;
  AddedTokenMatcher added_;
  std::unique_ptr<PairTable> merges_;             // (left, right) -> rank << 32 | merged id
  std::unique_ptr<CharBpe> char_bpe_;             // SentencePiece-style: the character-level BPE
  std::array<uint32_t, 256> byte_ids_{};          // id of each single byte
  std::unordered_map<std::string, uint32_t> whole_;  // ignore_merges: BPE token bytes -> id
  std::vector<bool> special_;                     // (V) special added tokens
  CutRule cut_rule_ = CutRule::Gpt2;
};

// Whether dir holds tokenizer files that Tokenizer::load reads.
bool has_tokenizer_files(const std::filesystem::path& dir);

}  // namespace magellano::data
