// Token files: the tokenized corpus that training reads, memory-mapped.
//
// Magellano token file, version 1 (all fields little-endian):
//   offset  bytes  field
//   0       8      magic "MGTOKENS"
//   8       4      version = 1
//   12      4      id width w in bytes: 2 if the vocabulary size V <= 65536, else 4
//   16      4      vocabulary size V (every id is < V)
//   20      4      header size = 32
//   24      8      token count N
//   32      N * w  the ids, unsigned little-endian
// Opening checks the magic, version, width, that the file holds exactly 32 + N*w bytes (so a
// truncated file is caught) and that every id is < V (and < the expected vocabulary, if given).
//
// Raw files: a file whose name ends in ".u16" is headerless little-endian uint16 ids (the
// nanoGPT convention, e.g. tinyshakespeare.gpt2.u16); its vocabulary size is unknown, so only
// the expected vocabulary (if given) bounds its ids.
//
// Writers stream ids to "<path>.tmp-<pid>" and rename it into place on commit(), so a failure
// never leaves a half-written token file.
#pragma once
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "magellano/io/atomic_file.hpp"

namespace magellano::data {

constexpr char kTokenFileMagic[8] = {'M', 'G', 'T', 'O', 'K', 'E', 'N', 'S'};
constexpr uint32_t kTokenFileVersion = 1;
constexpr uint32_t kTokenFileHeaderBytes = 32;

// Id width (2 or 4 bytes) for a vocabulary of V ids.
uint32_t token_id_width(uint64_t vocab_size);

class TokenFile {
 public:
  // Maps path read-only and validates it (see above). expected_vocab > 0: every id must also be
  // < expected_vocab (the model's vocabulary). Throws magellano::Error naming the file and the
  // problem.
  static TokenFile open(const std::filesystem::path& path, uint64_t expected_vocab = 0);

  TokenFile(TokenFile&& other) noexcept;
  TokenFile& operator=(TokenFile&& other) noexcept;
  TokenFile(const TokenFile&) = delete;
  TokenFile& operator=(const TokenFile&) = delete;
  ~TokenFile();

  uint64_t size() const { return count_; }                 // N tokens
  uint64_t vocab_size() const { return vocab_; }           // V (0 for a raw .u16 file)
  uint32_t id_width() const { return width_; }             // 2 or 4
  bool raw_u16() const { return raw_; }
  const std::filesystem::path& path() const { return path_; }

  uint32_t operator[](uint64_t i) const {
    return width_ == 2 ? static_cast<uint32_t>(ids16()[i]) : ids32()[i];
  }
  // out[k] = id[start + k] for k < count (start + count <= size()).
  void copy(uint64_t start, uint64_t count, int32_t* out) const;
  // Every id, as int32 (the dtype the device ops take).
  std::vector<int32_t> read_all() const;

 private:
  TokenFile() = default;
  const uint16_t* ids16() const { return reinterpret_cast<const uint16_t*>(ids_); }
  const uint32_t* ids32() const { return reinterpret_cast<const uint32_t*>(ids_); }

  std::filesystem::path path_;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  const unsigned char* ids_ = nullptr;
  uint64_t count_ = 0, vocab_ = 0;
  uint32_t width_ = 2;
  bool raw_ = false;
};

class TokenFileWriter {
 public:
  // vocab_size picks the id width; append() rejects ids >= vocab_size.
  TokenFileWriter(const std::filesystem::path& path, uint64_t vocab_size);
  void append(std::span<const uint32_t> ids);
  uint64_t count() const { return count_; }
  // Writes the count into the header and renames the file into place.
  void commit();

 private:
  io::AtomicFile file_;
  uint64_t vocab_, count_ = 0;
  uint32_t width_;
  std::string buffer_;
};

// Writes ids as one token file (header format above).
void write_token_file(const std::filesystem::path& path, uint64_t vocab_size,
                      std::span<const uint32_t> ids);

}  // namespace magellano::data
