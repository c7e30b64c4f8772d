// The GPT-2 pre-tokenizer scanner. The alternatives are tried in the pattern's order:
//   1. 's 't 're 've 'm 'll 'd      (ASCII apostrophe, lower-case letters, case-sensitive)
//   2-4. ' ?X+' for X in Letter, Number, Other   (an optional single U+0020 before the run)
//   5. \s+(?!\S): a whitespace run; if non-space follows, the run gives back its last character
//   6. \s+: a single whitespace character followed by non-space
#include "magellano/data/pretokenizer.hpp"

#include <array>

#include "magellano/data/unicode_class.hpp"

namespace magellano::data {
namespace {

constexpr std::array<CharClass, 128> make_ascii_classes() {
  std::array<CharClass, 128> t{};
  for (int c = 0; c < 128; ++c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) t[c] = CharClass::Letter;
    else if (c >= '0' && c <= '9') t[c] = CharClass::Number;
    else if (c == ' ' || (c >= 0x09 && c <= 0x0D)) t[c] = CharClass::Space;
    else t[c] = CharClass::Other;
  }
  return t;
}
constexpr std::array<CharClass, 128> kAscii = make_ascii_classes();

struct Symbol {
  CharClass cls;
  size_t len;
};

inline Symbol symbol_at(const unsigned char* p, const unsigned char* end) {
  if (*p < 0x80) return {kAscii[*p], 1};
  uint32_t cp;
  const size_t len = decode_utf8(p, end, &cp);
  return {char_class(cp), len};
}

// End of the run of symbols of class cls starting at p.
inline const unsigned char* run_end(const unsigned char* p, const unsigned char* end,
                                    CharClass cls) {
  while (p < end) {
    if (*p < 0x80) {
      if (kAscii[*p] != cls) break;
      ++p;
      continue;
    }
    const Symbol s = symbol_at(p, end);
    if (s.cls != cls) break;
    p += s.len;
  }
  return p;
}

// Length of a contraction ('s 't 're 've 'm 'll 'd) at p (which holds '\''), or 0.
inline size_t contraction_length(const unsigned char* p, const unsigned char* end) {
  const size_t avail = static_cast<size_t>(end - p);
  if (avail < 2) return 0;
  const unsigned char a = p[1];
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (avail < 3) return 0;
  const unsigned char b = p[2];
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

}  // namespace

size_t pretoken_end(std::string_view text, size_t pos) {
  const auto* begin = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = begin + text.size();
  const unsigned char* p = begin + pos;

  if (*p == '\'') {
    if (const size_t n = contraction_length(p, end)) return pos + n;
  }
  const Symbol first = symbol_at(p, end);
  if (*p == ' ' && p + 1 < end) {
    const Symbol second = symbol_at(p + 1, end);
    if (second.cls != CharClass::Space)
      return static_cast<size_t>(run_end(p + 1 + second.len, end, second.cls) - begin);
  }
  if (first.cls != CharClass::Space)
    return static_cast<size_t>(run_end(p + first.len, end, first.cls) - begin);

  // Whitespace run [p, q); last = start of its final character.
  const unsigned char* last = p;
  const unsigned char* q = p + first.len;
  while (q < end) {
    const Symbol s = symbol_at(q, end);
    if (s.cls != CharClass::Space) break;
    last = q;
    q += s.len;
  }
  if (q == end) return text.size();                            // \s+(?!\S) at end of text
  if (last > p) return static_cast<size_t>(last - begin);      // \s+(?!\S), one char given back
  return static_cast<size_t>(q - begin);                       // \s+ (a single character)
}

namespace {
inline bool is_safe_cut(std::string_view text, size_t p) {
  if (p == 0 || p >= text.size() || text[p] != '\n') return false;
  const unsigned char prev = static_cast<unsigned char>(text[p - 1]);
  return prev > 0x20 && prev < 0x7F;
}
}  // namespace

size_t next_safe_split(std::string_view text, size_t from) {
  for (size_t p = text.find('\n', from); p != std::string_view::npos; p = text.find('\n', p + 1))
    if (is_safe_cut(text, p)) return p;
  return text.size();
}

size_t last_safe_split(std::string_view text) {
  if (text.empty()) return 0;
  for (size_t p = text.rfind('\n'); p != std::string_view::npos && p > 0;
       p = text.rfind('\n', p - 1))
    if (is_safe_cut(text, p)) return p;
  return 0;
}

}  // namespace magellano::data
