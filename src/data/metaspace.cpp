// Metaspace::for_each_piece: NormalizedString::replace(' ', ▁), the prepend scheme, then
// split(▁, MergedWithNext).
#include "magellano/data/metaspace.hpp"

namespace magellano::data {

void Metaspace::for_each_piece(std::string_view stretch, bool text_start,
                               const std::function<void(std::string_view)>& f) const {
  std::string s;
  s.reserve(stretch.size() + stretch.size() / 2 + replacement.size());
  for (char c : stretch) {
    if (c == ' ') s += replacement;
    else s += c;
  }
  const bool starts = s.compare(0, replacement.size(), replacement) == 0;
  if (!starts && (prepend_scheme == PrependScheme::Always || (prepend_scheme == PrependScheme::First && text_start)))
    s.insert(0, replacement);
  if (s.empty()) return;
  if (!split) {
    f(s);
    return;
  }
  // MergedWithNext: each replacement starts a new piece.
  size_t begin = 0;
  for (size_t at = s.find(replacement, 1); at != std::string::npos; at = s.find(replacement, at + replacement.size())) {
    if (at > begin) f(std::string_view(s).substr(begin, at - begin));
    begin = at;
  }
  f(std::string_view(s).substr(begin));
}

}  // namespace magellano::data
