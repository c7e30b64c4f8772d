#include "magellano/generate/text_stream.hpp"

#include <algorithm>

namespace magellano::generate {

size_t incomplete_utf8_tail(std::string_view s) {
  // Look back over up to 3 continuation bytes (10xxxxxx) for the sequence's lead byte.
  const size_t n = s.size();
  for (size_t back = 1; back <= std::min<size_t>(4, n); ++back) {
    const auto c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte: keep looking
    size_t need = 1;
    if ((c & 0xE0) == 0xC0) need = 2;
    else if ((c & 0xF0) == 0xE0) need = 3;
    else if ((c & 0xF8) == 0xF0) need = 4;
    return back < need ? back : 0;  // a lead byte waiting for more, else complete (or invalid)
  }
  return 0;  // only continuation bytes: invalid, nothing to wait for
}

TextStream::TextStream(std::vector<std::string> stops) {
  for (auto& s : stops)
    if (!s.empty()) stops_.push_back(std::move(s));
}

bool TextStream::append(std::string_view bytes) {
  if (done_) return stopped_;
  const size_t old = text_.size();
  text_.append(bytes);
  size_t cut = std::string::npos;
  for (const auto& s : stops_) {
    // A match not found before must end in the new bytes, so it starts after old - |s|.
    const size_t from = old >= s.size() ? old - s.size() + 1 : 0;
    const size_t at = text_.find(s, from);
    if (at != std::string::npos) cut = std::min(cut, at);
  }
  if (cut != std::string::npos) {
    text_.resize(cut);  // the ready tail never reaches into a stop string: cut >= shown_
    done_ = stopped_ = true;
  }
  return stopped_;
}

std::string TextStream::take_ready() {
  size_t ready = text_.size();
  if (!done_) {
    size_t hold = incomplete_utf8_tail(text_);
    for (const auto& s : stops_) {
      // The longest proper prefix of s that the text ends with.
      for (size_t h = std::min(s.size() - 1, text_.size()); h > hold; --h) {
        if (std::string_view(text_).substr(text_.size() - h) == std::string_view(s).substr(0, h)) {
          hold = h;
          break;
        }
      }
    }
    ready = text_.size() - hold;
  }
  if (ready <= shown_) return {};
  std::string out = text_.substr(shown_, ready - shown_);
  shown_ = ready;
  return out;
}

}  // namespace magellano::generate
