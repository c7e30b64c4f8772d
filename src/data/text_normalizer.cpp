// TextNormalizer: tokenizers' NFC, Prepend and Replace (String pattern) normalizers in sequence.
#include "magellano/data/text_normalizer.hpp"

#include <algorithm>

#include "magellano/data/unicode_nfc.hpp"

namespace magellano::data {

bool TextNormalizer::has_nfc() const {
  return std::any_of(steps.begin(), steps.end(), [](const NormalizerStep& s) { return s.kind == NormalizerStep::Kind::Nfc; });
}

bool TextNormalizer::apply(std::string_view text, std::string& out) const {
  bool changed = false;
  std::string buffer;
  auto current = [&]() -> std::string_view { return changed ? std::string_view(buffer) : text; };
  for (const NormalizerStep& s : steps) {
    switch (s.kind) {
      case NormalizerStep::Kind::Nfc:
        if (!is_nfc_quick(current())) {
          buffer = to_nfc(current());
          changed = true;
        }
        break;
      case NormalizerStep::Kind::Prepend:
        if (!current().empty() && !s.text.empty()) {
          buffer = s.text + std::string(current());
          changed = true;
        }
        break;
      case NormalizerStep::Kind::Replace: {
        const std::string_view in = current();
        size_t at = in.find(s.text);
        if (at == std::string_view::npos) break;
        std::string replaced;
        replaced.reserve(in.size() + in.size() / 4);
        size_t from = 0;
        for (; at != std::string_view::npos; at = in.find(s.text, from)) {
          replaced.append(in.substr(from, at - from));
          replaced += s.content;
          from = at + s.text.size();
        }
        replaced.append(in.substr(from));
        buffer = std::move(replaced);
        changed = true;
        break;
      }
    }
  }
  if (changed) out = std::move(buffer);
  return changed;
}

std::string TextNormalizer::operator()(std::string_view text) const {
  std::string out;
  return apply(text, out) ? out : std::string(text);
}

}  // namespace magellano::data
