// Reading a text file in bounded chunks that end at safe cuts (by default GPT-2's, pretokenizer.hpp;
// a tokenizer's own: Tokenizer::last_safe_split), so that tokenizing chunk by chunk gives exactly
// the ids of tokenizing the whole file.
#pragma once
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <string_view>

namespace magellano::data {

class TextChunkReader {
 public:
  // The last safe cut in a text, or 0 if none.
  using LastCut = std::function<size_t(std::string_view)>;
  // block_bytes: how much is read at a time; a chunk is about that long unless a stretch of
  // the file holds no safe cut (e.g. no line ending in printable ASCII), which then stays whole.
  TextChunkReader(const std::filesystem::path& path, size_t block_bytes, LastCut last_cut = {});
  // The next chunk (valid until the next call), or false at the end of the file.
  bool next(std::string_view* chunk);
  uint64_t bytes_read() const { return bytes_read_; }

 private:
  std::filesystem::path path_;
  std::ifstream in_;
  size_t block_;
  LastCut last_cut_;
  std::string buffer_, chunk_;
  uint64_t bytes_read_ = 0;
  bool eof_ = false;
};

// Number of symbols in text as the pre-tokenizer sees them: code points, with each byte of
// invalid UTF-8 counted as one (what Python's len() gives for valid UTF-8 text).
uint64_t count_symbols(std::string_view text);
// Byte offset of symbol number n in text (text.size() if n >= count_symbols(text)).
size_t symbol_offset(std::string_view text, uint64_t n);

}  // namespace magellano::data
