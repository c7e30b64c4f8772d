// Unicode character classes of GPT-2's pre-tokenizer and a UTF-8 decoder that never fails.
//
// The classes come from generated tables (src/data/unicode_tables.cpp, made by
// scripts/gen_unicode_tables.py from the Unicode Character Database):
//   Letter  \p{L}  general categories Lu Ll Lt Lm Lo
//   Number  \p{N}  general categories Nd Nl No
//   Space   \s     property White_Space (what Rust's regex and Python's `regex` call \s)
//   Other   everything else, including each byte of invalid UTF-8
// and, apart from the classes, Rust regex's Unicode \w (is_word_char): Alphabetic, marks, Nd, Pc,
// Join_Control.
#pragma once
#include <cstddef>
#include <cstdint>

namespace magellano::data {

struct CodePointRange {
  uint32_t first, last;  // inclusive
};

enum class CharClass : uint8_t { Other = 0, Letter = 1, Number = 2, Space = 3 };

// A code point that does not exist: what decode_utf8 reports for a byte of invalid UTF-8.
constexpr uint32_t kInvalidCodePoint = 0xFFFFFFFFu;

// Class of a code point (kInvalidCodePoint and anything above U+10FFFF are Other).
CharClass char_class(uint32_t code_point);

// Whether a code point is a word character, \w of Rust's regex (false for kInvalidCodePoint).
bool is_word_char(uint32_t code_point);

// The Unicode version the tables came from, e.g. "15.0.0".
const char* unicode_tables_version();

// Decodes the code point at p (p < end). Returns its length in bytes (1..4) and stores it in
// *code_point. Overlong forms, surrogates, values above U+10FFFF, stray continuation bytes and
// truncated sequences are invalid: then the length is 1 (that single byte) and *code_point is
// kInvalidCodePoint, so every byte string decodes to a sequence of symbols that covers it.
inline size_t decode_utf8(const unsigned char* p, const unsigned char* end, uint32_t* code_point) {
  const unsigned c = p[0];
  if (c < 0x80) {
    *code_point = c;
    return 1;
  }
  const size_t avail = static_cast<size_t>(end - p);
  auto cont = [&](size_t i) { return i < avail && (p[i] & 0xC0) == 0x80; };
  if (c >= 0xC2 && c <= 0xDF && cont(1)) {
    *code_point = ((c & 0x1F) << 6) | (p[1] & 0x3F);
    return 2;
  }
  if (c >= 0xE0 && c <= 0xEF && cont(1) && cont(2)) {
    const uint32_t cp = ((c & 0x0F) << 12) | ((p[1] & 0x3F) << 6) | (p[2] & 0x3F);
    if (cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF)) {
      *code_point = cp;
      return 3;
    }
  } else if (c >= 0xF0 && c <= 0xF4 && cont(1) && cont(2) && cont(3)) {
    const uint32_t cp =
        ((c & 0x07) << 18) | ((p[1] & 0x3F) << 12) | ((p[2] & 0x3F) << 6) | (p[3] & 0x3F);
    if (cp >= 0x10000 && cp <= 0x10FFFF) {
      *code_point = cp;
      return 4;
    }
  }
  *code_point = kInvalidCodePoint;
  return 1;
}

namespace unicode_tables {
extern const char* const kUnicodeVersion;
extern const CodePointRange kLetters[];
extern const size_t kLetters_count;
extern const CodePointRange kNumbers[];
extern const size_t kNumbers_count;
extern const CodePointRange kWhiteSpace[];
extern const size_t kWhiteSpace_count;
extern const CodePointRange kWord[];
extern const size_t kWord_count;
}  // namespace unicode_tables

}  // namespace magellano::data
