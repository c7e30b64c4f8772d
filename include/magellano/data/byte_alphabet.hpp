// GPT-2's byte-to-unicode alphabet: each of the 256 byte values is shown as one printable
// code point, so BPE tokens can be stored as text in encoder.json / vocab.bpe.
//   bytes '!'..'~', 0xA1..0xAC, 0xAE..0xFF map to themselves;
//   the other 68 bytes (controls, space, 0x7F..0xA0, 0xAD) map to U+0100, U+0101, ... in order.
// The order of the 188 + 68 bytes in that listing is also the order of ids 0..255 in GPT-2's
// vocabulary (byte_order()[i] is the byte of id i), which the trainer reproduces.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace magellano::data {

// Code point that shows byte b.
uint32_t byte_to_code_point(uint8_t b);
// The byte shown by code point cp, or nullopt if cp is not in the alphabet.
std::optional<uint8_t> code_point_to_byte(uint32_t cp);
// The 256 bytes in GPT-2's id order: '!'..'~', 0xA1..0xAC, 0xAE..0xFF, then the rest ascending.
const std::array<uint8_t, 256>& byte_order();

// Raw bytes -> their alphabet form as UTF-8 (e.g. " the" -> "Ġthe").
std::string bytes_to_alphabet(std::string_view bytes);
// Alphabet form -> raw bytes; nullopt if the text is not valid UTF-8 or holds a code point
// outside the alphabet.
std::optional<std::string> alphabet_to_bytes(std::string_view text);

}  // namespace magellano::data
