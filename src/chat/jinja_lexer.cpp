#include "magellano/chat/jinja_lexer.hpp"

#include <cctype>

#include "magellano/chat/jinja_value.hpp"

namespace magellano::chat::jinja {

std::string Source::where(size_t pos) const {
  size_t line = 1, col = 1;
  for (size_t p = 0; p < pos && p < text.size(); ++p) {
    if (text[p] == '\n') {
      ++line;
      col = 1;
    } else if ((static_cast<unsigned char>(text[p]) & 0xc0) != 0x80) {
      ++col;
    }
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(col);
}

namespace {

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string normalise(const std::string& raw) {
  std::string s;
  s.reserve(raw.size());
  for (size_t p = 0; p < raw.size(); ++p) {
    if (raw[p] == '\r') {
      s += '\n';
      if (p + 1 < raw.size() && raw[p + 1] == '\n') ++p;
    } else {
      s += raw[p];
    }
  }
  if (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

// When s[t..] is the tag {%[-+] word [-+]%} (any spaces), the offset just past its "%}"; else npos.
size_t raw_tag(const std::string& s, size_t t, const char* word) {
  size_t p = t + 2;
  if (p < s.size() && (s[p] == '-' || s[p] == '+')) ++p;
  while (p < s.size() && is_ws(s[p])) ++p;
  const std::string w = word;
  if (s.compare(p, w.size(), w) != 0) return std::string::npos;
  p += w.size();
  while (p < s.size() && is_ws(s[p])) ++p;
  if (p < s.size() && (s[p] == '-' || s[p] == '+')) ++p;
  return s.compare(p, 2, "%}") == 0 ? p + 2 : std::string::npos;
}

void append_utf8(std::string& out, char32_t c) { out += to_utf8(std::u32string(1, c)); }

// A string literal starting at src[p] (the quote); returns its decoded value, sets p past it.
// Escapes as Python's "unicode-escape" reads them; an unknown escape stays as written.
std::string string_literal(const Source& src, size_t& p) {
  const std::string& s = src.text;
  const char q = s[p];
  const size_t start = p++;
  std::string out;
  while (p < s.size() && s[p] != q) {
    if (s[p] != '\\' || p + 1 >= s.size()) {
      out += s[p++];
      continue;
    }
    const char e = s[p + 1];
    p += 2;
    auto hex = [&](int n) {
      if (p + static_cast<size_t>(n) > s.size()) throw TemplateError("chat template: a bad \\x/\\u escape at " + src.where(p));
      const std::string h = s.substr(p, static_cast<size_t>(n));
      for (char c : h)
        if (!std::isxdigit(static_cast<unsigned char>(c)))
          throw TemplateError("chat template: a bad \\x/\\u escape at " + src.where(p));
      p += static_cast<size_t>(n);
      const unsigned long v = std::stoul(h, nullptr, 16);
      return static_cast<char32_t>(v > 0x10ffff || (v >= 0xd800 && v < 0xe000) ? 0xfffd : v);
    };
    switch (e) {
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case '\\': out += '\\'; break;
      case '\'': out += '\''; break;
      case '"': out += '"'; break;
      case 'a': out += '\a'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'v': out += '\v'; break;
      case '\n': break;  // a line continuation
      case 'x': append_utf8(out, hex(2)); break;
      case 'u': append_utf8(out, hex(4)); break;
      case 'U': append_utf8(out, hex(8)); break;
      default:
        if (e >= '0' && e <= '7') {
          int v = e - '0';
          for (int k = 0; k < 2 && p < s.size() && s[p] >= '0' && s[p] <= '7'; ++k) v = v * 8 + (s[p++] - '0');
          append_utf8(out, static_cast<char32_t>(v));
        } else {
          out += '\\';
          out += e;
        }
    }
  }
  if (p >= s.size()) throw TemplateError("chat template: a string that never ends, from " + src.where(start));
  ++p;
  return out;
}

}  // namespace

std::vector<Token> tokenize(Source& src, const std::string& raw_text, const LexOptions& options) {
  src.text = normalise(raw_text);
  const std::string& s = src.text;
  std::vector<Token> out;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t t = pos;
    while ((t = s.find('{', t)) != std::string::npos && !(t + 1 < s.size() && (s[t + 1] == '{' || s[t + 1] == '%' || s[t + 1] == '#')))
      ++t;
    if (t == std::string::npos) t = s.size();
    std::string text = s.substr(pos, t - pos);
    const bool tag = t < s.size();
    const char kind = tag ? s[t + 1] : 0;
    const char sign = tag && t + 2 < s.size() && (s[t + 2] == '-' || s[t + 2] == '+') ? s[t + 2] : 0;
    if (sign == '-') {
      while (!text.empty() && is_ws(text.back())) text.pop_back();
    } else if (tag && sign != '+' && kind != '{' && options.lstrip_blocks) {
      const size_t l = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
      if (l > 0 || pos == 0 || s[pos - 1] == '\n') {
        bool blank = true;
        for (size_t k = l; k < text.size(); ++k) blank = blank && is_ws(text[k]);
        if (blank) text.resize(l);
      }
    }
    if (!text.empty()) out.push_back({Token::Kind::Text, text, pos});
    if (!tag) break;
    // The end of a tag: "-" strips all whitespace after it, trim_blocks one "\n" after %} and #}.
    auto after_tag = [&](size_t end, size_t close_len, char close_sign, bool block) {
      size_t p = end + close_len;
      if (close_sign == '-') {
        while (p < s.size() && is_ws(s[p])) ++p;
      } else if (close_sign != '+' && block && options.trim_blocks && p < s.size() && s[p] == '\n') {
        ++p;
      }
      return p;
    };
    if (kind == '#') {
      const size_t e = s.find("#}", t + 2);
      if (e == std::string::npos) throw TemplateError("chat template: a comment {# that never ends, from " + src.where(t));
      const char cs = e > t + 2 + (sign ? 1 : 0) && (s[e - 1] == '-' || s[e - 1] == '+') ? s[e - 1] : 0;
      pos = after_tag(e, 2, cs, true);
      continue;
    }
    if (kind == '%') {
      const size_t open_end = raw_tag(s, t, "raw");
      if (open_end != std::string::npos) {  // {% raw %}...{% endraw %}: text as it is
        size_t close = open_end, close_end = std::string::npos;
        while ((close = s.find("{%", close)) != std::string::npos) {
          if ((close_end = raw_tag(s, close, "endraw")) != std::string::npos) break;
          close += 2;
        }
        if (close == std::string::npos) throw TemplateError("chat template: {% raw %} without {% endraw %}, from " + src.where(t));
        std::string raw = s.substr(open_end, close - open_end);
        if (s[close + 2] == '-')
          while (!raw.empty() && is_ws(raw.back())) raw.pop_back();
        if (!raw.empty()) out.push_back({Token::Kind::Text, raw, open_end});
        const char cs = s[close_end - 3] == '-' || s[close_end - 3] == '+' ? s[close_end - 3] : 0;
        pos = after_tag(close_end - 2, 2, cs, true);
        continue;
      }
    }
    const bool block = kind == '%';
    out.push_back({block ? Token::Kind::BlockBegin : Token::Kind::VarBegin, "", t});
    size_t p = t + 2 + (sign ? 1 : 0);
    int depth = 0;
    for (;;) {
      while (p < s.size() && is_ws(s[p])) ++p;
      if (p >= s.size())
        throw TemplateError(std::string("chat template: a tag ") + (block ? "{%" : "{{") + " that never ends, from " + src.where(t));
      const char* close = block ? "%}" : "}}";
      if (depth == 0) {
        char cs = 0;
        size_t q = p;
        if ((s[q] == '-' || s[q] == '+') && s.compare(q + 1, 2, close) == 0) cs = s[q++];
        if (s.compare(q, 2, close) == 0) {
          out.push_back({block ? Token::Kind::BlockEnd : Token::Kind::VarEnd, "", q});
          pos = after_tag(q, 2, cs, block);
          break;
        }
      }
      const char c = s[p];
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t q = p;
        while (q < s.size() && (std::isalnum(static_cast<unsigned char>(s[q])) || s[q] == '_')) ++q;
        out.push_back({Token::Kind::Name, s.substr(p, q - p), p});
        p = q;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        size_t q = p;
        while (q < s.size() && (std::isdigit(static_cast<unsigned char>(s[q])) || s[q] == '_')) ++q;
        bool is_float = false;
        if (q + 1 < s.size() && s[q] == '.' && std::isdigit(static_cast<unsigned char>(s[q + 1]))) {
          is_float = true;
          ++q;
          while (q < s.size() && (std::isdigit(static_cast<unsigned char>(s[q])) || s[q] == '_')) ++q;
        }
        if (q < s.size() && (s[q] == 'e' || s[q] == 'E')) {
          size_t r = q + 1;
          if (r < s.size() && (s[r] == '+' || s[r] == '-')) ++r;
          if (r < s.size() && std::isdigit(static_cast<unsigned char>(s[r]))) {
            is_float = true;
            q = r;
            while (q < s.size() && std::isdigit(static_cast<unsigned char>(s[q]))) ++q;
          }
        }
        std::string digits;
        for (size_t k = p; k < q; ++k)
          if (s[k] != '_') digits += s[k];
        out.push_back({is_float ? Token::Kind::Float : Token::Kind::Integer, digits, p});
        p = q;
      } else if (c == '\'' || c == '"') {
        const size_t start = p;
        out.push_back({Token::Kind::String, string_literal(src, p), start});
      } else {
        static const char* two[] = {"//", "**", "==", "!=", ">=", "<="};
        std::string op;
        for (const char* o : two)
          if (s.compare(p, 2, o) == 0) op = o;
        if (op.empty()) {
          if (std::string("+-*/%~<>=.,:|()[]{}").find(c) == std::string::npos)
            throw TemplateError(std::string("chat template: unexpected character '") + c + "' at " + src.where(p));
          op = std::string(1, c);
          if (c == '(' || c == '[' || c == '{') ++depth;
          if ((c == ')' || c == ']' || c == '}') && depth > 0) --depth;
        }
        out.push_back({Token::Kind::Op, op, p});
        p += op.size();
      }
    }
  }
  out.push_back({Token::Kind::End, "", s.size()});
  return out;
}

}  // namespace magellano::chat::jinja
