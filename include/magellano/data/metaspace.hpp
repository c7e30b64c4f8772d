// tokenizer.json's Metaspace pre-tokenizer (pre_tokenizers/metaspace.rs), the newer spelling of a
// SentencePiece-style tokenizer (Mistral, Llama conversions with legacy = false): in each stretch of
// text between added tokens every ' ' (U+0020 only) becomes the replacement character ("▁"), then
// prepend_scheme decides whether a replacement is put in front of a stretch that does not start
// with one:
//   always  every stretch;
//   first   only the stretch that starts the text (original offset 0: not after an added token);
//   never   none;
// and with split the stretch is cut before every replacement (MergedWithNext), else it is one piece.
// The old spelling "add_prefix_space": false means never; true (or absent) keeps prepend_scheme,
// whose default is always.
#pragma once
#include <functional>
#include <string>
#include <string_view>

namespace magellano::data {

enum class PrependScheme { Always, First, Never };

struct Metaspace {
  std::string replacement = "\xE2\x96\x81";  // one character, U+2581 by default
  PrependScheme prepend_scheme = PrependScheme::Always;
  bool split = true;

  // Calls f(piece) for each piece of stretch; text_start: the stretch starts the text.
  void for_each_piece(std::string_view stretch, bool text_start, const std::function<void(std::string_view)>& f) const;
};

}  // namespace magellano::data
