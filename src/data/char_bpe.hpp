// CharBpe: the character-level BPE of a SentencePiece-style tokenizer (sentencepiece_bpe.hpp) on one
// piece: characters to their ids (byte fallback, unk), then the rank-ordered merges (bpe_word.hpp).
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "pair_table.hpp"

namespace magellano::data {

class CharBpe {
 public:
  // pieces: (V) the vocabulary's strings; in_vocab: (V) which ids are the BPE's (not added-only);
  // merges: (M) (left id, right id) in rank order. Throws magellano::Error for a merge that makes no
  // token or an unk id outside the vocabulary.
  CharBpe(const std::vector<std::string>& pieces, const std::vector<bool>& in_vocab,
          const std::vector<std::pair<uint32_t, uint32_t>>& merges, bool byte_fallback,
          std::optional<uint32_t> unk_id, bool fuse_unk, bool ignore_merges);

  // Appends the ids of one piece to out.
  void encode(std::string_view piece, std::vector<uint32_t>& out) const;

 private:
  std::unordered_map<std::string, uint32_t> id_of_;  // vocabulary string -> id
  std::array<int64_t, 256> byte_ids_{};               // "<0xXX>" ids, -1 where missing
  PairTable merges_;
  bool byte_fallback_;
  std::optional<uint32_t> unk_id_;
  bool fuse_unk_, ignore_merges_;
};

}  // namespace magellano::data
