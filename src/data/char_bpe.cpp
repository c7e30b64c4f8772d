// CharBpe: models/bpe/model.rs merge_word (characters, byte fallback, unk fusing) and word.rs
// merge_all (bpe_merge_word).
#include "char_bpe.hpp"

#include <cstdio>

#include "bpe_word.hpp"
#include "magellano/data/unicode_class.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::data {

CharBpe::CharBpe(const std::vector<std::string>& pieces, const std::vector<bool>& in_vocab,
                 const std::vector<std::pair<uint32_t, uint32_t>>& merges, bool byte_fallback,
                 std::optional<uint32_t> unk_id, bool fuse_unk, bool ignore_merges)
    : merges_(merges.size()), byte_fallback_(byte_fallback), unk_id_(unk_id), fuse_unk_(fuse_unk),
      ignore_merges_(ignore_merges) {
  id_of_.reserve(pieces.size() * 2);
  for (uint32_t id = 0; id < pieces.size(); ++id)
    if (in_vocab[id]) id_of_.emplace(pieces[id], id);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    const auto it = id_of_.find(name);
    byte_ids_[b] = it == id_of_.end() ? int64_t{-1} : int64_t{it->second};
  }
  if (unk_id_ && *unk_id_ >= pieces.size())
    throw Error("tokenizer unk id " + std::to_string(*unk_id_) + " is outside the vocabulary.");
  for (uint32_t r = 0; r < merges.size(); ++r) {
    const auto [a, b] = merges[r];
    const auto it = id_of_.find(pieces[a] + pieces[b]);
    if (it == id_of_.end()) throw Error("tokenizer merge " + std::to_string(r) + " makes no token.");
    // A pair listed twice keeps its first (lowest) rank; the tokenizer.json reader keeps the last.
    if (merges_.find(a, b) == PairTable::kMissing) merges_.insert(a, b, (uint64_t{r} << 32) | it->second);
  }
}

void CharBpe::encode(std::string_view piece, std::vector<uint32_t>& out) const {
  if (piece.empty()) return;
  if (ignore_merges_)
    if (const auto it = id_of_.find(std::string(piece)); it != id_of_.end()) {
      out.push_back(it->second);
      return;
    }
  std::vector<uint32_t> ids;
  ids.reserve(piece.size());
  bool unk_pending = false;  // tokenizers' `unk`: added when a vocabulary character follows, or at the end
  const auto* p = reinterpret_cast<const unsigned char*>(piece.data());
  std::string ch;
  for (size_t i = 0; i < piece.size();) {
    uint32_t cp;
    const size_t n = decode_utf8(p + i, p + piece.size(), &cp);
    ch.assign(piece.substr(i, n));
    i += n;
    if (const auto it = id_of_.find(ch); it != id_of_.end()) {
      if (unk_pending) ids.push_back(*unk_id_);
      unk_pending = false;
      ids.push_back(it->second);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (unsigned char c : ch) all = all && byte_ids_[c] >= 0;
      if (all) {
        for (unsigned char c : ch) ids.push_back(static_cast<uint32_t>(byte_ids_[c]));
        continue;
      }
    }
    if (!unk_id_) continue;  // no unk token: the character is dropped
    if (unk_pending && !fuse_unk_) ids.push_back(*unk_id_);
    unk_pending = true;
  }
  if (unk_pending) ids.push_back(*unk_id_);
  bpe_merge_word(ids, merges_);
  out.insert(out.end(), ids.begin(), ids.end());
}

}  // namespace magellano::data
