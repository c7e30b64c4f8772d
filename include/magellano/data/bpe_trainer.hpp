// Learning a byte-level BPE vocabulary from text, with GPT-2's pre-tokenizer and byte alphabet.
//
// Result layout (what GPT-2's files look like, so Tokenizer loads it unchanged):
//   ids 0..255      the 256 bytes in GPT-2's order (byte_alphabet.hpp: byte_order())
//   ids 256..       merge r makes id 256 + r (unless its bytes already form a token, which
//                   is then reused: rare, and GPT-2's loaders accept it)
//   last id         <|endoftext|>, a special token
// Training: count the pre-tokenized pieces ("words") of the corpus (literal <|endoftext|> only
// separates documents); then repeatedly merge the adjacent pair with the highest count over all
// words, ties broken by the smaller (left id, right id); stop at vocab_size ids or when no pair
// is left. Pair counts are updated incrementally (only words holding the merged pair are
// touched), with a lazily corrected max-heap. Fully deterministic: same text, same files.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "magellano/data/bpe_model.hpp"

namespace magellano::data {

// Piece bytes -> occurrences, from a stream of text.
class WordCounter {
 public:
  void add_text(std::string_view text);
  // Reads files in bounded chunks (text_chunks.hpp); memory grows with distinct words only.
  void add_files(const std::vector<std::filesystem::path>& inputs);
  const std::unordered_map<std::string, uint64_t>& counts() const { return counts_; }
  uint64_t bytes() const { return bytes_; }

 private:
  std::unordered_map<std::string, uint64_t> counts_;
  uint64_t bytes_ = 0;
};

struct BpeTrainReport {
  size_t merges = 0;          // lines of vocab.bpe
  size_t words = 0;          // distinct pieces
  bool stopped_early = false;  // ran out of pairs before vocab_size
};

// vocab_size counts the 256 bytes and <|endoftext|>: at least 257. Throws magellano::Error for
// an empty corpus or a vocabulary size below 257 or above 2^31.
BpeModel train_bpe(const WordCounter& words, size_t vocab_size, BpeTrainReport* report = nullptr);

}  // namespace magellano::data
