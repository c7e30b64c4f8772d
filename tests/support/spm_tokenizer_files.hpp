// SentencePiece-style tokenizer.json files for tests (Llama 2 / Mistral / Jamba layout), in the format
// that `tokenizers` writes: a small hand-made one, and one on GPT-2's vocabulary (from
// ../shared/data/gpt2) with its merges listed the way transformers' converter lists a SentencePiece
// model's. Nothing is copied into the repository.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace mgtest {

struct SpmStyle {
  bool legacy = true;                     // normalizer Prepend + Replace, no pre-tokenizer; else Metaspace
  std::string prepend_scheme = "first";   // Metaspace's
  bool split = false;                     // Metaspace's
  bool metaspace_decoder = false;         // decoder Metaspace instead of Replace/ByteFallback/Fuse/Strip
};

// The hand-made vocabulary (ids in brackets):
//   <unk> [0], <s> [1], </s> [2] (special added tokens), <0x00>..<0xFF> [3..258],
//   characters ▁ e t h l o a n r s d w H é [259..272],
//   merges in rank order: ▁+t [273] h+e [274] ▁t+he=▁the [275] l+l [276] e+ll [277] H+ell [278]
//   Hell+o [279] ▁+w [280] o+r [281] ▁w+or [282] l+d [283] ▁wor+ld [284] ▁+▁ [285] a+n [286]
//   ▁+an [287] ▁+a [288] ▁a+n=▁an (a second merge making [287]);
//   added: <|im_start|> [289] (special), <tool> [290] (not special, normalized);
//   template "<s> $A"; unk_token <unk>, fuse_unk, byte_fallback.
nlohmann::json spm_tokenizer_json(const SpmStyle& style = {});

// GPT-2's vocabulary as a SentencePiece-style one: each token whose bytes are UTF-8 becomes that
// text with ' ' as "▁" (others are left out), <0x00>..<0xFF>, <unk>, <s>, </s>; the merges are every
// split of a piece into two pieces, ordered by the piece's GPT-2 id, then by the two parts' ids
// (transformers' SentencePieceExtractor). Legacy spelling, BOS template.
nlohmann::json spm_from_gpt2_tokenizer_json();

}  // namespace mgtest
