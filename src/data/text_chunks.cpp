#include "magellano/data/text_chunks.hpp"

#include "magellano/data/pretokenizer.hpp"
#include "magellano/data/unicode_class.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::data {

TextChunkReader::TextChunkReader(const std::filesystem::path& path, size_t block_bytes, LastCut last_cut)
    : path_(path), in_(path, std::ios::binary), block_(block_bytes), last_cut_(std::move(last_cut)) {
  if (!last_cut_) last_cut_ = [](std::string_view text) { return last_safe_split(text); };
  if (!in_ || std::filesystem::is_directory(path))
    throw Error("input file " + path.string() + " is missing or unreadable.");
}

bool TextChunkReader::next(std::string_view* chunk) {
  for (;;) {
    if (!eof_) {
      const size_t old = buffer_.size();
      buffer_.resize(old + block_);
      in_.read(buffer_.data() + old, static_cast<std::streamsize>(block_));
      const auto got = static_cast<size_t>(in_.gcount());
      buffer_.resize(old + got);
      bytes_read_ += got;
      if (in_.bad()) throw Error("cannot read input file " + path_.string() + ".");
      if (got < block_) eof_ = true;
    }
    if (eof_) {
      if (buffer_.empty()) return false;
      chunk_.swap(buffer_);
      buffer_.clear();
      *chunk = chunk_;
      return true;
    }
    const size_t cut = last_cut_(buffer_);
    if (cut == 0) continue;  // no safe cut yet: read more
    chunk_.assign(buffer_, 0, cut);
    buffer_.erase(0, cut);
    *chunk = chunk_;
    return true;
  }
}

uint64_t count_symbols(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  uint64_t n = 0;
  uint32_t cp;
  while (p < end) {
    p += *p < 0x80 ? 1 : decode_utf8(p, end, &cp);
    ++n;
  }
  return n;
}

size_t symbol_offset(std::string_view text, uint64_t n) {
  const auto* begin = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = begin + text.size();
  const auto* p = begin;
  uint32_t cp;
  for (uint64_t i = 0; i < n && p < end; ++i) p += *p < 0x80 ? 1 : decode_utf8(p, end, &cp);
  return static_cast<size_t>(p - begin);
}

}  // namespace magellano::data
