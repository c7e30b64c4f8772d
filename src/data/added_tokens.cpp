// AddedTokenMatcher: added_vocabulary.rs's find_matches / extract_and_normalize.
#include "magellano/data/added_tokens.hpp"

#include <algorithm>

#include "magellano/data/unicode_class.hpp"

namespace magellano::data {
namespace {

const unsigned char* bytes(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

// The code point that ends text[0, end) (end > 0), or kInvalidCodePoint.
uint32_t last_code_point(std::string_view text, size_t end, size_t* start) {
  size_t b = end - 1;
  while (b > 0 && end - b < 4 && (bytes(text)[b] & 0xC0) == 0x80) --b;
  uint32_t cp;
  if (decode_utf8(bytes(text) + b, bytes(text) + end, &cp) != end - b) {  // not one whole character
    *start = end - 1;
    return kInvalidCodePoint;
  }
  *start = b;
  return cp;
}

bool is_word(uint32_t cp) { return is_word_char(cp); }  // \w of Rust's regex

bool is_space(uint32_t cp) { return char_class(cp) == CharClass::Space; }

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens, TextNormalizer normalizer)
    : tokens_(std::move(tokens)), normalizer_(std::move(normalizer)) {
  for (uint32_t i = 0; i < tokens_.size(); ++i) {
    const AddedToken& t = tokens_[i];
    if (t.content.empty()) continue;
    Pass& pass = t.normalized ? normalized_ : raw_;
    pass.by_first_byte[static_cast<unsigned char>(t.content[0])].push_back(i);
    pass.empty = false;
  }
  for (Pass* pass : {&raw_, &normalized_})
    for (auto& list : pass->by_first_byte)
      std::stable_sort(list.begin(), list.end(),
                       [&](uint32_t a, uint32_t b) { return tokens_[a].content.size() > tokens_[b].content.size(); });
}

void AddedTokenMatcher::split_pass(const Pass& pass, std::string_view text, bool allow_special,
                                   const std::function<void(std::string_view)>& on_text,
                                   const std::function<void(const AddedToken&)>& on_token) const {
  size_t emitted = 0;  // text[0, emitted) is handed on
  for (size_t i = 0; i < text.size();) {
    const AddedToken* found = nullptr;
    for (uint32_t k : pass.by_first_byte[bytes(text)[i]])
      if (text.compare(i, tokens_[k].content.size(), tokens_[k].content) == 0) {
        found = &tokens_[k];
        break;
      }
    if (!found) {
      ++i;
      continue;
    }
    size_t start = i, stop = i + found->content.size();
    i = stop;
    if (found->special && !allow_special) continue;
    if (found->single_word) {
      size_t b;
      uint32_t cp = 0;
      const bool word_before = start > 0 && is_word(last_code_point(text, start, &b));
      bool word_after = false;
      if (stop < text.size()) {
        decode_utf8(bytes(text) + stop, bytes(text) + text.size(), &cp);
        word_after = is_word(cp);
      }
      if (word_before || word_after) continue;
    }
    if (found->lstrip) {
      size_t b;
      while (start > emitted && is_space(last_code_point(text, start, &b))) start = b;
    }
    if (found->rstrip) {
      uint32_t cp;
      size_t len;
      while (stop < text.size() && (len = decode_utf8(bytes(text) + stop, bytes(text) + text.size(), &cp)) &&
             is_space(cp))
        stop += len;
      i = stop;
    }
    if (start > emitted) on_text(text.substr(emitted, start - emitted));
    on_token(*found);
    emitted = stop;
  }
  if (emitted < text.size()) on_text(text.substr(emitted));
}

void AddedTokenMatcher::split(std::string_view text, bool allow_special,
                              const std::function<void(std::string_view)>& on_text,
                              const std::function<void(const AddedToken&)>& on_token) const {
  if (normalized_.empty && normalizer_.identity()) {
    split_pass(raw_, text, allow_special, on_text, on_token);
    return;
  }
  split_pass(raw_, text, allow_special,
             [&](std::string_view stretch) {
               std::string normalized;
               if (normalizer_.apply(stretch, normalized))
                 split_pass(normalized_, normalized, allow_special, on_text, on_token);
               else
                 split_pass(normalized_, stretch, allow_special, on_text, on_token);
             },
             on_token);
}

}  // namespace magellano::data
