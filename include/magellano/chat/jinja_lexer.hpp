// Jinja template source → tokens, with the whitespace rules transformers renders chat templates
// under (jinja2 with trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False):
//   - newlines are normalised to "\n" and one trailing "\n" of the source is dropped;
//   - "{%- ", "{{-", "{#-" strip all whitespace before the tag, "-%}", "-}}", "-#}" all after;
//   - lstrip_blocks: spaces and tabs between a line's start and "{%" or "{#" are dropped
//     ("{%+" keeps them); trim_blocks: the first "\n" after "%}" or "#}" is dropped ("+%}" keeps it);
//   - {# comments #} vanish; {% raw %}...{% endraw %} is text.
// Inside tags: names, integers, floats, strings ('..' or ".." with Python's escapes) and operators.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace magellano::chat::jinja {

struct Token {
  enum class Kind { Text, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Integer, Float, Op, End };
  Kind kind;
  std::string text;  // Text: the text; Name / Op: itself; String: the decoded value; numbers: digits
  size_t pos;        // offset in the normalised source
};

struct Source {
  std::string text;  // normalised
  // "line L, column C" of an offset (1-based).
  std::string where(size_t pos) const;
};

// transformers' settings; the tests switch one off to show that the fixtures catch it.
struct LexOptions {
  bool trim_blocks = true, lstrip_blocks = true;
};

// Throws TemplateError for an unterminated tag, comment or string, or an unknown character.
std::vector<Token> tokenize(Source& src, const std::string& raw_text, const LexOptions& options = {});

}  // namespace magellano::chat::jinja
