// Added tokens: literal strings that become one id each before any pre-tokenization or BPE, as
// Hugging Face `tokenizers` matches them (tokenizer/added_vocabulary.rs). GPT-2's <|endoftext|> is
// one; tokenizer.json lists them under "added_tokens" (chat markers, reserved specials, runs of
// spaces in GPT-NeoX's vocabulary, ...).
//
// Matching, on the text between earlier matches:
//   pass 1 finds the tokens with normalized = false in the whole text, pass 2 the tokens with
//   normalized = true in each stretch that pass 1 left, after the normalizer (text_normalizer.hpp),
//   if any, has normalized that stretch (a normalized token's content is normalized already:
//   hf_tokenizer_json.hpp);
//   each pass scans left to right and takes, at the leftmost position where some token starts, the
//   longest one there, then goes on after it;
//   special tokens are skipped (left as text) when the caller does not allow them;
//   single_word: skipped unless the match is neither preceded nor followed by a word character
//     (\w as Rust's regex has it, unicode_class.hpp's is_word_char);
//   lstrip / rstrip: the whitespace (\s) run before / after the match becomes part of the token.
// A skipped match still ends the scan of its own span (as tokenizers' Aho-Corasick iterator does).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "magellano/data/text_normalizer.hpp"

namespace magellano::data {

struct AddedToken {
  std::string content;  // the literal text, raw bytes (not the byte alphabet)
  uint32_t id = 0;
  bool special = false;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens, TextNormalizer normalizer = {});

  // Cuts text at added tokens: calls on_text(stretch) for each non-empty stretch between tokens
  // (normalized) and on_token(token) for each token, in text order. allow_special = false leaves
  // special tokens as text.
  void split(std::string_view text, bool allow_special, const std::function<void(std::string_view)>& on_text,
             const std::function<void(const AddedToken&)>& on_token) const;

  const std::vector<AddedToken>& tokens() const { return tokens_; }
  bool empty() const { return tokens_.empty() && normalizer_.identity(); }

 private:
  // The indices into tokens_ of one pass's tokens, by first byte, longest first.
  struct Pass {
    std::vector<std::vector<uint32_t>> by_first_byte = std::vector<std::vector<uint32_t>>(256);
    bool empty = true;
  };
  void split_pass(const Pass& pass, std::string_view text, bool allow_special,
                  const std::function<void(std::string_view)>& on_text,
                  const std::function<void(const AddedToken&)>& on_token) const;

  std::vector<AddedToken> tokens_;
  TextNormalizer normalizer_;
  Pass raw_, normalized_;
};

}  // namespace magellano::data
