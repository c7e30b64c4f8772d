// Hugging Face tokenizer.json (the `tokenizers` serialization, version "1.0") for BPE, byte-level or
// SentencePiece-style, and the model's beginning / end-of-text ids from the folder's configs.
//
// Supported, exactly as `tokenizers` runs it:
//   model:          "BPE" with "vocab" {token: id} and "merges" as ["a b", ...] or [["a", "b"], ...];
//                   ignore_merges; dropout null (or 0); continuing_subword_prefix / end_of_word_suffix
//                   null or ""; byte-level: unk_token / fuse_unk ignored (every byte has a token),
//                   byte_fallback false; SentencePiece-style: byte_fallback, unk_token, fuse_unk
//                   (sentencepiece_bpe.hpp)
//   normalizer:     null, NFC, Prepend, Replace of a string, or a Sequence of them (text_normalizer.hpp)
//   pre_tokenizer:  byte-level: ByteLevel (add_prefix_space, use_regex), or a Sequence of Split steps
//                   (Regex or String pattern, any behavior, invert) ending in ByteLevel
//                   (piece_splitter.hpp; the regex subset is regex_split.hpp's);
//                   SentencePiece-style: null (legacy Llama / Jamba) or Metaspace (metaspace.hpp)
//   post_processor: null, ByteLevel (nothing for ids), TemplateProcessing ("single" template: the
//                   special tokens before and after $A), or a Sequence of those
//   decoder:        byte-level: ByteLevel; SentencePiece-style: Replace, ByteFallback, Fuse, Strip,
//                   Metaspace, or a Sequence of them (token_decoder.hpp)
//   added_tokens:   every field (added_tokens.hpp); ids assigned as tokenizers does (the vocabulary's
//                   id for a content that is a vocabulary token, else the next free id); a normalized
//                   one is matched and decoded as its normalized content
//   truncation / padding: ignored (transformers turns them off unless asked)
// Anything else (WordPiece, Unigram, WordLevel, a regex Replace, NFKC, a Whitespace pre-tokenizer, a
// regex outside the subset, ...) is refused with one line naming it.
//
// Token bytes: byte-level: a vocabulary token (or an added token's content) in the byte alphabet
// decodes to its bytes; one outside it stands for its own UTF-8 (what tokenizers' ByteLevel decoder
// does). SentencePiece-style: TokenDecoder::token_text of its string.
//
// BOS / EOS: config.json's bos_token_id / eos_token_id (eos may be a list), overridden by
// generation_config.json's; where neither names one, tokenizer_config.json's bos_token /
// eos_token (a string or {"content": ...}) looked up as a token.
#pragma once
#include <filesystem>
#include <string>
#include <string_view>

#include "magellano/data/tokenizer.hpp"

namespace magellano::data {

struct HfTokenizerParts {
  BpeModel model;  // special_ids: the ids outside the BPE vocabulary
  TokenizerSpec spec;
};

// Parses the text of a tokenizer.json; `name` (e.g. the path) starts every error line.
HfTokenizerParts parse_hf_tokenizer_json(std::string_view text, const std::string& name);

// Fills spec.bos_id / spec.eos_ids / spec.pad_id (a pad id outside the vocabulary is left out) from
// dir's config.json, generation_config.json and
// tokenizer_config.json (those present).
void read_hf_special_ids(const std::filesystem::path& dir, const BpeModel& model, TokenizerSpec& spec);

// dir/tokenizer.json and dir's configs as a Tokenizer.
Tokenizer load_hf_tokenizer(const std::filesystem::path& dir);

}  // namespace magellano::data
