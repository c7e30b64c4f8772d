// char_class: a two-level lookup built once from the generated range tables.
//   level 1: block index of (code_point >> 8), 0x1100 entries
//   level 2: deduplicated 256-entry blocks of CharClass values
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "magellano/data/unicode_class.hpp"

namespace magellano::data {
namespace {

constexpr uint32_t kCodePoints = 0x110000;
constexpr uint32_t kBlock = 256;

struct ClassTable {
  std::vector<uint16_t> block_of;  // (kCodePoints / kBlock)
  std::vector<uint8_t> blocks;     // (unique blocks, kBlock)

  ClassTable() {
    std::vector<uint8_t> flat(kCodePoints, static_cast<uint8_t>(CharClass::Other));
    auto paint = [&](const CodePointRange* r, size_t n, CharClass cls) {
      for (size_t i = 0; i < n; ++i)
        for (uint32_t cp = r[i].first; cp <= r[i].last && cp < kCodePoints; ++cp)
          flat[cp] = static_cast<uint8_t>(cls);
    };
    using namespace unicode_tables;
    paint(kLetters, kLetters_count, CharClass::Letter);
    paint(kNumbers, kNumbers_count, CharClass::Number);
    paint(kWhiteSpace, kWhiteSpace_count, CharClass::Space);

    std::map<std::string, uint16_t> seen;
    block_of.resize(kCodePoints / kBlock);
    for (uint32_t b = 0; b < kCodePoints / kBlock; ++b) {
      const std::string block(flat.begin() + b * kBlock, flat.begin() + (b + 1) * kBlock);
      auto [it, inserted] = seen.emplace(block, static_cast<uint16_t>(seen.size()));
      if (inserted) blocks.insert(blocks.end(), block.begin(), block.end());
      block_of[b] = it->second;
    }
  }
};

const ClassTable& table() {
  static const ClassTable t;
  return t;
}

}  // namespace

CharClass char_class(uint32_t code_point) {
  if (code_point >= kCodePoints) return CharClass::Other;
  const ClassTable& t = table();
  return static_cast<CharClass>(
      t.blocks[static_cast<size_t>(t.block_of[code_point / kBlock]) * kBlock + code_point % kBlock]);
}

bool is_word_char(uint32_t code_point) {
  using namespace unicode_tables;
  const CodePointRange* end = kWord + kWord_count;
  const CodePointRange* it = std::upper_bound(kWord, end, code_point,
                                              [](uint32_t cp, const CodePointRange& r) { return cp < r.first; });
  return it != kWord && code_point <= (it - 1)->last;
}

const char* unicode_tables_version() { return unicode_tables::kUnicodeVersion; }

}  // namespace magellano::data
