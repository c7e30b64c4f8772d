// Hugging Face tokenizer.json (the `tokenizers` serialization, version "1.0") for byte-level BPE,
// and the model's beginning / end-of-text ids from the folder's configs.
//
// Supported, exactly as `tokenizers` runs it:
//   model:          "BPE" with "vocab" {token: id} and "merges" as ["a b", ...] or [["a", "b"], ...];
//                   ignore_merges; unk_token / fuse_unk (never used: every byte has a token);
//                   dropout null (or 0); continuing_subword_prefix / end_of_word_suffix null or "";
//                   byte_fallback false
//   normalizer:     null, or NFC (unicode_nfc.hpp; GPT-NeoX's)
//   pre_tokenizer:  ByteLevel (add_prefix_space, use_regex), or a Sequence of Split steps (Regex or
//                   String pattern, any behavior, invert) ending in ByteLevel (piece_splitter.hpp;
//                   the regex subset is regex_split.hpp's)
//   post_processor: null, ByteLevel (nothing for ids), TemplateProcessing ("single" template: the
//                   special tokens before and after $A), or a Sequence of those
//   decoder:        ByteLevel
//   added_tokens:   every field (added_tokens.hpp); ids assigned as tokenizers does (the vocabulary's
//                   id for a content that is a vocabulary token, else the next free id)
//   truncation / padding: ignored (transformers turns them off unless asked)
// Anything else (WordPiece, Unigram, WordLevel, byte_fallback, a normalizer, a Metaspace or
// Whitespace pre-tokenizer, a regex outside the subset, ...) is refused with one line naming it.
//
// Token bytes: a vocabulary token (or an added token's content) in the byte alphabet decodes to
// its bytes; one outside it stands for its own UTF-8 (what tokenizers' ByteLevel decoder does).
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
  BpeModel model;  // special_ids: the ids outside the byte-level BPE vocabulary
  TokenizerSpec spec;
};

// Parses the text of a tokenizer.json; `name` (e.g. the path) starts every error line.
HfTokenizerParts parse_hf_tokenizer_json(std::string_view text, const std::string& name);

// Fills spec.bos_id / spec.eos_ids from dir's config.json, generation_config.json and
// tokenizer_config.json (those present).
void read_hf_special_ids(const std::filesystem::path& dir, const BpeModel& model, TokenizerSpec& spec);

// dir/tokenizer.json and dir's configs as a Tokenizer.
Tokenizer load_hf_tokenizer(const std::filesystem::path& dir);

}  // namespace magellano::data
