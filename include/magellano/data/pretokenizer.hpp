// GPT-2's pre-tokenizer: splits text into the pieces that byte-level BPE then encodes one by one.
//
// It is a hand-written scanner over UTF-8 code points equivalent to GPT-2's pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// under leftmost-first alternation (Python `regex`, Rust fancy-regex as in tiktoken), with
// \p{L}, \p{N}, \s from the Unicode tables (unicode_class.hpp). Each byte of invalid UTF-8 is a
// symbol of its own that is neither letter, number nor space, so every byte lands in a piece.
#pragma once
#include <cstddef>
#include <string_view>

namespace magellano::data {

// Byte offset one past the end of the piece that starts at byte offset pos (pos < text.size()).
// The piece is never empty.
size_t pretoken_end(std::string_view text, size_t pos);

// Calls f(std::string_view piece) for every piece of text, in order; the pieces concatenate to
// text.
template <class F>
void for_each_pretoken(std::string_view text, F&& f) {
  for (size_t pos = 0; pos < text.size();) {
    const size_t end = pretoken_end(text, pos);
    f(text.substr(pos, end - pos));
    pos = end;
  }
}

// A cut at offset p is "safe" when pre-tokenizing text[0, p) and text[p, n) separately gives the
// same pieces as pre-tokenizing text: true where text[p] is '\n' and text[p-1] is printable
// ASCII other than space (a piece always ends there, and no piece before p looks past p).
// next_safe_split returns the first safe cut at or after `from`, or text.size() if none.
size_t next_safe_split(std::string_view text, size_t from);
// The last safe cut in text, or 0 if none.
size_t last_safe_split(std::string_view text);

}  // namespace magellano::data
