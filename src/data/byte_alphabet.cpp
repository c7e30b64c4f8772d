// bytes_to_unicode() of GPT-2's encoder.py, as tables.
#include "magellano/data/byte_alphabet.hpp"

#include "magellano/data/unicode_class.hpp"

namespace magellano::data {
namespace {

bool printable(int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE; }

struct Alphabet {
  std::array<uint32_t, 256> cp_of_byte{};
  std::array<int16_t, 512> byte_of_cp{};  // the alphabet lies below U+0144
  std::array<uint8_t, 256> order{};
  Alphabet() {
    byte_of_cp.fill(-1);
    int n = 0, extra = 0;
    for (int b = 0; b < 256; ++b)
      if (printable(b)) {
        cp_of_byte[b] = static_cast<uint32_t>(b);
        order[n++] = static_cast<uint8_t>(b);
      }
    for (int b = 0; b < 256; ++b)
      if (!printable(b)) {
        cp_of_byte[b] = static_cast<uint32_t>(256 + extra++);
        order[n++] = static_cast<uint8_t>(b);
      }
    for (int b = 0; b < 256; ++b) byte_of_cp[cp_of_byte[b]] = static_cast<int16_t>(b);
  }
};

const Alphabet& alphabet() {
  static const Alphabet a;
  return a;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else {  // the alphabet stays below U+0800: two bytes
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace

uint32_t byte_to_code_point(uint8_t b) { return alphabet().cp_of_byte[b]; }

std::optional<uint8_t> code_point_to_byte(uint32_t cp) {
  if (cp >= 512 || alphabet().byte_of_cp[cp] < 0) return std::nullopt;
  return static_cast<uint8_t>(alphabet().byte_of_cp[cp]);
}

const std::array<uint8_t, 256>& byte_order() { return alphabet().order; }

std::string bytes_to_alphabet(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) append_utf8(out, alphabet().cp_of_byte[b]);
  return out;
}

std::optional<std::string> alphabet_to_bytes(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  while (p < end) {
    uint32_t cp;
    p += decode_utf8(p, end, &cp);
    const auto b = code_point_to_byte(cp);
    if (!b) return std::nullopt;
    out += static_cast<char>(*b);
  }
  return out;
}

}  // namespace magellano::data
