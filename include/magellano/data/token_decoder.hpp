// A tokenizer.json "decoder" for SentencePiece-style tokenizers: how the tokens' strings (the
// vocabulary's "▁the", "<0x0A>", an added token's content) become text, as Hugging Face
// `tokenizers` runs it (each step maps the list of token strings to a new list; the results are
// joined):
//   Replace       each token: every occurrence of a literal string replaced ("▁" -> " ")
//   ByteFallback  each run of consecutive "<0xXX>" tokens becomes the UTF-8 text of those bytes, or,
//                 if the bytes are not valid UTF-8, one U+FFFD per byte token
//   Fuse          all tokens joined into one
//   Strip         each token loses up to `start` leading and `stop` trailing `content` characters
//   Metaspace     each token: the replacement becomes ' ', but in the first token it is dropped
//                 (unless prepend_scheme is never)
// The legacy Llama / Mistral / Jamba files spell Sequence[Replace("▁", " "), ByteFallback, Fuse,
// Strip(" ", 1, 0)]; newer ones Metaspace.
#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace magellano::data {

struct DecoderStep {
  enum class Kind { Replace, ByteFallback, Fuse, Strip, Metaspace };
  Kind kind = Kind::Fuse;
  std::string pattern;  // Replace: the literal; Strip: the character; Metaspace: the replacement
  std::string content;  // Replace: what the literal becomes
  size_t start = 0, stop = 0;  // Strip
  bool drop_first = true;      // Metaspace: drop the replacement in the first token
};

struct TokenDecoder {
  std::vector<DecoderStep> steps;

  // The text of the tokens (their strings, in order).
  std::string decode(std::vector<std::string> tokens) const;
  // The text one token stands for inside a longer text (not first): Replace and Metaspace applied,
  // a "<0xXX>" token as its raw byte. The bytes generation streams token by token.
  std::string token_text(const std::string& token) const;
};

// The byte of a ByteFallback token "<0xXX>" (two hex digits, either case, as tokenizers reads them).
std::optional<unsigned char> byte_fallback_value(const std::string& token);

}  // namespace magellano::data
