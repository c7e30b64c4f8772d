// A SentencePiece-style BPE tokenizer as tokenizer.json spells it (Llama 1/2, Mistral, Jamba): the
// BPE works on characters (Unicode scalar values), not bytes, as Hugging Face `tokenizers`' BPE model
// runs it (models/bpe/model.rs merge_word):
//   each character of a piece is its vocabulary token; a character that is not one becomes, with
//   byte_fallback, its UTF-8 bytes as "<0xXX>" tokens (when all of them are tokens), else the unk
//   token (consecutive unks fused into one with fuse_unk; tokenizers adds a pending unk only when the
//   next character is a vocabulary token or the piece ends, so a fused unk can come after byte
//   tokens that followed it); with neither, the character is dropped;
//   then the merges apply in rank order (lowest first, leftmost on ties), as for byte-level BPE.
// A byte that is not UTF-8 is a character of its own (tokenizers never sees one): it falls back.
// Spaces become "▁" before that: by the normalizer (legacy: Prepend("▁") + Replace(" ", "▁"),
// text_normalizer.hpp) or by the Metaspace pre-tokenizer (metaspace.hpp). Without a pre-tokenizer a
// whole stretch between added tokens is one piece. The decoder (token_decoder.hpp) turns "▁" back
// into spaces and "<0xXX>" runs into their text.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "magellano/data/metaspace.hpp"
#include "magellano/data/token_decoder.hpp"

namespace magellano::data {

struct SentencePieceSpec {
  std::vector<std::string> pieces;     // (V) each id's string: the vocabulary's ("▁the", "<0x0A>"), an
                                       // added token's content (normalized), "" for an unused id
  bool byte_fallback = false;
  std::optional<uint32_t> unk_id;      // the model's unk_token
  bool fuse_unk = false;
  std::optional<Metaspace> metaspace;  // the pre-tokenizer; none: each stretch is one piece
  TokenDecoder decoder;
};

}  // namespace magellano::data
