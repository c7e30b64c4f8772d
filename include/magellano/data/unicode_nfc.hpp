// Unicode Normalization Form C (canonical decomposition, canonical ordering, canonical composition;
// UAX #15), what tokenizer.json's {"type": "NFC"} normalizer applies before pre-tokenization
// (GPT-NeoX's tokenizer, and with it the Mamba checkpoints that use it). Tables from the Unicode
// Character Database 15.0.0 (scripts/gen_normalization_tables.py); Hangul syllables arithmetic.
// Each byte of invalid UTF-8 (unicode_class.hpp) passes through unchanged and blocks composition.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace magellano::data {

// text in NFC. Text whose code points are all below U+0300 is NFC already and comes back as is.
std::string to_nfc(std::string_view text);
// Whether to_nfc(text) == text, cheaply for the common case (no code point at or above U+0300).
bool is_nfc_quick(std::string_view text);

namespace nfc_tables {
struct CombiningClassRange {
  uint32_t first, last;
  uint8_t ccc;
};
struct Decomposition {
  uint32_t code_point, first, second;  // second == 0: a single code point
};
struct Composition {
  uint32_t first, second, composite;  // sorted by (first, second)
};
extern const char* const kNormalizationVersion;
extern const CombiningClassRange kCombiningClasses[];
extern const size_t kCombiningClasses_count;
extern const Decomposition kDecompositions[];
extern const size_t kDecompositions_count;
extern const Composition kCompositions[];
extern const size_t kCompositions_count;
}  // namespace nfc_tables

}  // namespace magellano::data
