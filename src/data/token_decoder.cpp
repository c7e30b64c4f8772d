// TokenDecoder: tokenizers' decoders/{sequence, byte_fallback, fuse, strip}.rs, Replace's
// decode_chain and Metaspace's.
#include "magellano/data/token_decoder.hpp"

#include "magellano/data/unicode_class.hpp"

namespace magellano::data {
namespace {

std::string replace_all(const std::string& s, const std::string& from, const std::string& to) {
  if (from.empty()) return s;
  std::string out;
  size_t begin = 0;
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, begin)) {
    out.append(s, begin, at - begin);
    out += to;
    begin = at + from.size();
  }
  out.append(s, begin);
  return out;
}

bool valid_utf8(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    uint32_t cp;
    p += decode_utf8(p, end, &cp);
    if (cp == kInvalidCodePoint) return false;
  }
  return true;
}

// The characters of s (UTF-8), each as its bytes.
std::vector<std::string> chars_of(const std::string& s) {
  std::vector<std::string> out;
  const auto* b = reinterpret_cast<const unsigned char*>(s.data());
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    const size_t n = decode_utf8(b + i, b + s.size(), &cp);
    out.emplace_back(s, i, n);
    i += n;
  }
  return out;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<unsigned char> byte_fallback_value(const std::string& token) {
  // token.len() == 6 && starts_with("<0x") && ends_with('>'), then u8::from_str_radix(&token[3..5], 16),
  // which also takes a leading '+'.
  if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return std::nullopt;
  const int hi = hex_digit(token[3]), lo = hex_digit(token[4]);
  if (token[3] == '+' && lo >= 0) return static_cast<unsigned char>(lo);
  if (hi < 0 || lo < 0) return std::nullopt;
  return static_cast<unsigned char>(hi * 16 + lo);
}

std::string TokenDecoder::decode(std::vector<std::string> tokens) const {
  for (const DecoderStep& step : steps) {
    switch (step.kind) {
      case DecoderStep::Kind::Replace:
        for (std::string& t : tokens) t = replace_all(t, step.pattern, step.content);
        break;
      case DecoderStep::Kind::ByteFallback: {
        std::vector<std::string> out;
        std::string bytes;
        size_t count = 0;
        auto flush = [&] {
          if (count == 0) return;
          if (valid_utf8(bytes)) out.push_back(bytes);
          else
            for (size_t i = 0; i < count; ++i) out.emplace_back("\xEF\xBF\xBD");
          bytes.clear();
          count = 0;
        };
        for (std::string& t : tokens) {
          if (const auto b = byte_fallback_value(t)) {
            bytes += static_cast<char>(*b);
            ++count;
          } else {
            flush();
            out.push_back(std::move(t));
          }
        }
        flush();
        tokens = std::move(out);
        break;
      }
      case DecoderStep::Kind::Fuse: {
        std::string joined;
        for (const std::string& t : tokens) joined += t;
        tokens.assign(1, std::move(joined));
        break;
      }
      case DecoderStep::Kind::Strip:
        for (std::string& t : tokens) {
          const auto chars = chars_of(t);
          size_t begin = 0, end = chars.size();
          for (size_t i = 0; i < step.start && i < chars.size() && chars[i] == step.pattern; ++i) begin = i + 1;
          for (size_t i = 0; i < step.stop && i < chars.size() && chars[chars.size() - 1 - i] == step.pattern; ++i)
            end = chars.size() - 1 - i;
          std::string kept;
          for (size_t i = begin; i < end; ++i) kept += chars[i];
          t = std::move(kept);
        }
        break;
      case DecoderStep::Kind::Metaspace:
        for (size_t i = 0; i < tokens.size(); ++i)
          tokens[i] = replace_all(tokens[i], step.pattern, i == 0 && step.drop_first ? "" : " ");
        break;
    }
  }
  std::string out;
  for (const std::string& t : tokens) out += t;
  return out;
}

std::string TokenDecoder::token_text(const std::string& token) const {
  std::string t = token;
  for (const DecoderStep& step : steps) {
    if (step.kind == DecoderStep::Kind::Replace) t = replace_all(t, step.pattern, step.content);
    else if (step.kind == DecoderStep::Kind::Metaspace) t = replace_all(t, step.pattern, " ");
    else if (step.kind == DecoderStep::Kind::ByteFallback)
      if (const auto b = byte_fallback_value(t)) t = std::string(1, static_cast<char>(*b));
  }
  return t;
}

}  // namespace magellano::data
