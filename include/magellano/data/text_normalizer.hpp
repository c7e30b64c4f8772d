// A tokenizer.json "normalizer": what happens to each stretch of text between the added tokens that
// are matched unnormalized (added_tokens.hpp) before pre-tokenization, as Hugging Face `tokenizers`
// runs it. The supported steps, applied in order (a Sequence, or one step alone):
//   NFC      Unicode Normalization Form C (unicode_nfc.hpp; GPT-NeoX's)
//   Prepend  the string put before a non-empty stretch (normalizers/prepend.rs; Llama / Jamba: "▁")
//   Replace  every non-overlapping occurrence of a literal string ({"String": ...} pattern), left to
//            right, by the content (Llama / Jamba: " " -> "▁")
// The legacy Llama / Mistral / Jamba files spell Sequence[Prepend("▁"), Replace(" ", "▁")].
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace magellano::data {

struct NormalizerStep {
  enum class Kind { Nfc, Prepend, Replace };
  Kind kind = Kind::Nfc;
  std::string text;     // Prepend: what is put before; Replace: the pattern (non-empty)
  std::string content;  // Replace: what the pattern becomes
};

struct TextNormalizer {
  std::vector<NormalizerStep> steps;

  bool identity() const { return steps.empty(); }
  bool has_nfc() const;
  // Normalizes text into out and returns true, or returns false (out untouched) when the result
  // is text itself.
  bool apply(std::string_view text, std::string& out) const;
  std::string operator()(std::string_view text) const;
};

}  // namespace magellano::data
