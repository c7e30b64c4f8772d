// Byte-level BPE tokenizer that reproduces GPT-2 (and tiktoken's "gpt2") exactly.
//
// encode: text (any bytes) -> ids (values < vocab_size()):
//   1. with SpecialTokens::Allowed, literal special tokens (e.g. "<|endoftext|>") become their
//      ids and split the text; with SpecialTokens::AsText they are ordinary text;
//   2. each text segment is split by GPT-2's pre-tokenizer (pretokenizer.hpp);
//   3. each piece's bytes are merged by rank (bpe_word), with a per-call cache of pieces seen.
// decode: ids -> the exact bytes that were encoded (invalid UTF-8 included).
// Encoding with threads > 1 cuts big inputs at safe line breaks (pretokenizer.hpp), so the
// result is identical to single-threaded encoding.
#pragma once
#include <array>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "magellano/data/bpe_model.hpp"

namespace magellano::data {

enum class SpecialTokens { Allowed, AsText };

class PairTable;

class Tokenizer {
 public:
  explicit Tokenizer(BpeModel model);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // Loads a tokenizer directory (bpe_model.hpp); throws magellano::Error for bad files.
  static Tokenizer load(const std::filesystem::path& dir);

  size_t vocab_size() const { return model_.tokens.size(); }
  const BpeModel& model() const { return model_; }
  // The id of special token `name` (e.g. "<|endoftext|>"), if the vocabulary has it.
  std::optional<uint32_t> special_id(std::string_view name) const;
  std::optional<uint32_t> eot_id() const { return special_id("<|endoftext|>"); }

  // threads: 1 = this thread only; 0 = all hardware threads.
  std::vector<uint32_t> encode(std::string_view text, SpecialTokens special,
                               unsigned threads = 1) const;
  // Appends the ids of text to out (single-threaded).
  void encode_append(std::string_view text, SpecialTokens special,
                     std::vector<uint32_t>& out) const;

  // Raw bytes of the ids, concatenated. Throws magellano::Error for an id >= vocab_size().
  std::string decode(std::span<const uint32_t> ids) const;
  // Raw bytes of one id (must be < vocab_size()).
  const std::string& token_bytes(uint32_t id) const { return model_.tokens[id]; }

 private:
  struct PieceCache;
  void encode_segment(std::string_view text, std::vector<uint32_t>& out, PieceCache& cache) const;
  void encode_with_cache(std::string_view text, SpecialTokens special, std::vector<uint32_t>& out,
                         PieceCache& cache) const;

  BpeModel model_;
  std::unique_ptr<PairTable> merges_;             // (left, right) -> rank << 32 | merged id
  std::array<uint32_t, 256> byte_ids_{};          // id of each single byte
  std::vector<std::pair<std::string, uint32_t>> specials_;  // (raw text, id), longest first
};

}  // namespace magellano::data
