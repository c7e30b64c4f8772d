// A small backtracking regex matcher over UTF-8 text: the subset of Oniguruma syntax that the
// Split pre-tokenizers of Hugging Face tokenizer.json files use (GPT-2, GPT-4 / cl100k, Llama-3,
// Qwen2, DBRX / Granite 4.0 patterns). Semantics are Oniguruma's (what `tokenizers` runs):
// leftmost match, alternatives tried in order, greedy / lazy / possessive quantifiers.
//
// Supported:
//   literals (UTF-8), escaped punctuation, \r \n \t \f \v \e \0, \xHH, \x{H..}, \uHHHH, `.` (any
//   symbol but \n)
//   \s \S (Unicode White_Space), \p{L} \p{N} \P{L} \P{N} \pL \pN (also \p{Letter}, \p{Number})
//   classes [...] [^...] of literals, ranges a-z and the escapes above
//   groups (...) (?:...), case-insensitive groups (?i:...) (ASCII letters and their Unicode simple
//   case folds: s ~ U+017F, k ~ U+212A), look-ahead (?=...) (?!...), atomic groups (?>...)
//   quantifiers * + ? {n} {n,} {n,m}, each optionally lazy (?) or possessive (+)
//   ^ and $ as Ruby syntax (Oniguruma's default) has them: start / end of a line
// Not supported (compile throws magellano::Error naming the construct): \b \A \z \G,
// back-references, look-behind, \d \w and other property classes (\p{Lu}, \p{M}, \p{P}, ...),
// case-insensitive non-ASCII literals, inline flags other than (?i:...).
//
// Text is a sequence of symbols: code points, and each byte of invalid UTF-8 as a symbol of its own
// (unicode_class.hpp) that only negated classes (\S, [^...], \P{..}) and `.` match.
#pragma once
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace magellano::data {

class SplitRegex {
 public:
  struct Match {
    size_t begin, end;  // byte offsets, begin <= end
  };

  // Throws magellano::Error "regex <pattern>: <construct> is not supported ..." for syntax
  // outside the subset above, or for a malformed pattern.
  static SplitRegex compile(std::string_view pattern);
  // A regex matching `literal` exactly (Split's {"String": ...} patterns).
  static SplitRegex literal(std::string_view literal);

  SplitRegex(SplitRegex&&) noexcept;
  SplitRegex& operator=(SplitRegex&&) noexcept;
  ~SplitRegex();

  // The leftmost match starting at or after byte offset `from` (a symbol boundary), or nullopt.
  std::optional<Match> find(std::string_view text, size_t from) const;

  const std::string& pattern() const { return pattern_; }

  struct Node;  // the compiled pattern (regex_split.cpp)

 private:
  SplitRegex() = default;
  std::string pattern_;
  std::vector<std::unique_ptr<Node>> nodes_;  // owns every node; nodes_[0] is the root
};

}  // namespace magellano::data
