// to_nfc: UAX #15's algorithm over code points, one stretch at a time: a stretch starts at a
// character below U+0300 that is followed by one at or above it (only those can change), so text
// of plain scripts is copied through untouched.
#include "magellano/data/unicode_nfc.hpp"

#include <algorithm>
#include <vector>

#include "magellano/data/unicode_class.hpp"

namespace magellano::data {
namespace {

using namespace nfc_tables;

constexpr uint32_t kHangulS = 0xAC00, kHangulL = 0x1100, kHangulV = 0x1161, kHangulT = 0x11A7;
constexpr uint32_t kHangulLCount = 19, kHangulVCount = 21, kHangulTCount = 28;
constexpr uint32_t kHangulNCount = kHangulVCount * kHangulTCount, kHangulSCount = kHangulLCount * kHangulNCount;

uint8_t combining_class(uint32_t cp) {
  if (cp < 0x300 || cp == kInvalidCodePoint) return 0;
  const auto* end = kCombiningClasses + kCombiningClasses_count;
  const auto* it = std::upper_bound(kCombiningClasses, end, cp,
                                    [](uint32_t c, const CombiningClassRange& r) { return c < r.first; });
  if (it == kCombiningClasses) return 0;
  --it;
  return cp <= it->last ? it->ccc : 0;
}

const Decomposition* decomposition(uint32_t cp) {
  const auto* end = kDecompositions + kDecompositions_count;
  const auto* it = std::lower_bound(kDecompositions, end, cp,
                                    [](const Decomposition& d, uint32_t c) { return d.code_point < c; });
  return it != end && it->code_point == cp ? it : nullptr;
}

// The primary composite of (a, b), or 0.
uint32_t compose(uint32_t a, uint32_t b) {
  if (a >= kHangulL && a < kHangulL + kHangulLCount && b >= kHangulV && b < kHangulV + kHangulVCount)
    return kHangulS + ((a - kHangulL) * kHangulVCount + (b - kHangulV)) * kHangulTCount;
  if (a >= kHangulS && a < kHangulS + kHangulSCount && (a - kHangulS) % kHangulTCount == 0 && b > kHangulT &&
      b < kHangulT + kHangulTCount)
    return a + (b - kHangulT);
  const auto* end = kCompositions + kCompositions_count;
  const auto* it = std::lower_bound(kCompositions, end, std::make_pair(a, b), [](const Composition& c, const auto& key) {
    return c.first != key.first ? c.first < key.first : c.second < key.second;
  });
  return it != end && it->first == a && it->second == b ? it->composite : 0;
}

void decompose(uint32_t cp, std::vector<uint32_t>& out) {
  if (cp >= kHangulS && cp < kHangulS + kHangulSCount) {
    const uint32_t s = cp - kHangulS;
    out.push_back(kHangulL + s / kHangulNCount);
    out.push_back(kHangulV + (s % kHangulNCount) / kHangulTCount);
    if (s % kHangulTCount) out.push_back(kHangulT + s % kHangulTCount);
    return;
  }
  if (const Decomposition* d = decomposition(cp)) {
    decompose(d->first, out);
    if (d->second) decompose(d->second, out);
    return;
  }
  out.push_back(cp);
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// One stretch: (code point, its bytes when invalid) -> NFC appended to out.
struct Symbol {
  uint32_t cp;
  char raw;  // the byte, for kInvalidCodePoint
};

void normalize_stretch(const std::vector<Symbol>& in, std::string& out) {
  // Decompose; an invalid byte is a starter that nothing composes with.
  std::vector<Symbol> d;
  std::vector<uint32_t> parts;
  for (const Symbol& s : in) {
    if (s.cp == kInvalidCodePoint) {
      d.push_back(s);
      continue;
    }
    parts.clear();
    decompose(s.cp, parts);
    for (uint32_t p : parts) d.push_back({p, 0});
  }
  // Canonical ordering: each run of non-starters sorted stably by combining class.
  for (size_t i = 0; i < d.size();) {
    if (combining_class(d[i].cp) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < d.size() && combining_class(d[j].cp) != 0) ++j;
    std::stable_sort(d.begin() + static_cast<long>(i), d.begin() + static_cast<long>(j),
                     [](const Symbol& a, const Symbol& b) { return combining_class(a.cp) < combining_class(b.cp); });
    i = j;
  }
  // Canonical composition.
  std::vector<Symbol> c;
  size_t starter = SIZE_MAX;  // index in c of the last starter
  int last_ccc = -1;          // combining class of the last symbol kept after that starter (-1: none)
  for (const Symbol& s : d) {
    const uint8_t k = s.cp == kInvalidCodePoint ? 0 : combining_class(s.cp);
    if (starter != SIZE_MAX && c[starter].cp != kInvalidCodePoint && s.cp != kInvalidCodePoint &&
        (last_ccc == -1 || (last_ccc != 0 && last_ccc < k))) {
      if (const uint32_t composite = compose(c[starter].cp, s.cp)) {
        c[starter].cp = composite;
        continue;
      }
    }
    if (k == 0) {
      starter = c.size();
      last_ccc = -1;
    } else {
      last_ccc = k;
    }
    c.push_back(s);
  }
  for (const Symbol& s : c) {
    if (s.cp == kInvalidCodePoint) out += s.raw;
    else append_utf8(out, s.cp);
  }
}

const unsigned char* bytes(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

}  // namespace

bool is_nfc_quick(std::string_view text) {
  // U+0300 is 0xCC 0x80 in UTF-8: no lead byte at or above 0xCC means no code point >= U+0300.
  return std::none_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) >= 0xCC; });
}

std::string to_nfc(std::string_view text) {
  if (is_nfc_quick(text)) return std::string(text);
  std::string out;
  out.reserve(text.size());
  std::vector<Symbol> stretch;
  const auto flush = [&] {
    normalize_stretch(stretch, out);
    stretch.clear();
  };
  for (size_t i = 0; i < text.size();) {
    uint32_t cp;
    const size_t len = decode_utf8(bytes(text) + i, bytes(text) + text.size(), &cp);
    // A code point below U+0300 other than a Hangul jamo is unchanged by NFC and starts a new
    // stretch: what came before it can no longer change.
    if (cp < 0x300 && !stretch.empty()) flush();
    stretch.push_back({cp, text[i]});
    i += len;
  }
  flush();
  return out;
}

}  // namespace magellano::data
