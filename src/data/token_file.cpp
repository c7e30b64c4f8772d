#include "magellano/data/token_file.hpp"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>

#include "magellano/runtime/error.hpp"
#include "magellano/runtime/input_file.hpp"

namespace magellano::data {
namespace fs = std::filesystem;

namespace {

template <class T>
T load_le(const unsigned char* p) {
  T v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(static_cast<T>(p[i]) << (8 * i));
  return v;
}

template <class T>
void store_le(unsigned char* p, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}

bool is_raw_u16_name(const fs::path& p) { return p.extension() == ".u16"; }

}  // namespace

uint32_t token_id_width(uint64_t vocab_size) { return vocab_size <= 65536 ? 2 : 4; }

TokenFile::TokenFile(TokenFile&& o) noexcept { *this = std::move(o); }

TokenFile& TokenFile::operator=(TokenFile&& o) noexcept {
  if (this != &o) {
    if (map_) ::munmap(map_, map_bytes_);
    path_ = std::move(o.path_);
    map_ = o.map_;
    map_bytes_ = o.map_bytes_;
    ids_ = o.ids_;
    count_ = o.count_;
    vocab_ = o.vocab_;
    width_ = o.width_;
    raw_ = o.raw_;
    o.map_ = nullptr;
    o.map_bytes_ = 0;
  }
  return *this;
}

TokenFile::~TokenFile() {
  if (map_) ::munmap(map_, map_bytes_);
}

TokenFile TokenFile::open(const fs::path& path, uint64_t expected_vocab) {
  const std::string name = "token file " + path.string();
  const InputFile in = InputFile::open(path, "token file", " Make one with `magellano tokenize`.");
  const auto bytes = static_cast<size_t>(in.size());
  TokenFile f;
  f.path_ = path;
  if (bytes > 0) {
    f.map_ = ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, in.fd(), 0);
    if (f.map_ == MAP_FAILED) {
      f.map_ = nullptr;
      throw Error(name + " cannot be memory-mapped: " + std::strerror(errno) + ".");
    }
    f.map_bytes_ = bytes;
  }
  const auto* data = static_cast<const unsigned char*>(f.map_);

  if (is_raw_u16_name(path)) {
    if (bytes % 2 != 0)
      throw Error(name + " has an odd size (" + std::to_string(bytes) +
                  " bytes) but .u16 files hold 2-byte ids: it is truncated or not a .u16 file.");
    f.raw_ = true;
    f.width_ = 2;
    f.count_ = bytes / 2;
    f.ids_ = data;
  } else {
    if (bytes < kTokenFileHeaderBytes || std::memcmp(data, kTokenFileMagic, 8) != 0)
      throw Error(name + " is not a Magellano token file (no \"MGTOKENS\" header" +
                  (bytes < kTokenFileHeaderBytes ? ", file too short" : "") +
                  "). Make one with `magellano tokenize`; raw uint16 ids must be named *.u16.");
    const auto version = load_le<uint32_t>(data + 8);
    if (version != kTokenFileVersion)
      throw Error(name + " has format version " + std::to_string(version) + "; this build reads " +
                  "version " + std::to_string(kTokenFileVersion) + ". Re-run `magellano tokenize`.");
    f.width_ = load_le<uint32_t>(data + 12);
    f.vocab_ = load_le<uint32_t>(data + 16);
    const auto header = load_le<uint32_t>(data + 20);
    f.count_ = load_le<uint64_t>(data + 24);
    if (header != kTokenFileHeaderBytes || f.vocab_ == 0 || f.width_ != token_id_width(f.vocab_))
      throw Error(name + " has a garbled header (width " + std::to_string(f.width_) + ", vocab " +
                  std::to_string(f.vocab_) + ", header size " + std::to_string(header) +
                  "). Re-run `magellano tokenize`.");
    const uint64_t payload = bytes - kTokenFileHeaderBytes;
    if (f.count_ > payload / f.width_ || payload != f.count_ * f.width_)
      throw Error(name + " is truncated or padded: the header promises " +
                  std::to_string(f.count_) + " ids (" + std::to_string(f.count_ * f.width_) +
                  " bytes) but " + std::to_string(payload) + " bytes follow it. Re-run `magellano tokenize`.");
    f.ids_ = data + kTokenFileHeaderBytes;
  }

  if (expected_vocab && f.vocab_ > expected_vocab)
    throw Error(name + " was written for a vocabulary of " + std::to_string(f.vocab_) +
                " ids but the model has " + std::to_string(expected_vocab) +
                ". Tokenize with the model's tokenizer.");
  const uint64_t bound = expected_vocab ? expected_vocab : f.vocab_;
  if (bound) {
    for (uint64_t i = 0; i < f.count_; ++i) {
      if (f[i] >= bound)
        throw Error(name + " holds id " + std::to_string(f[i]) + " at position " +
                    std::to_string(i) + ", but the vocabulary has only " + std::to_string(bound) +
                    " ids: the file is garbled or was made with another tokenizer.");
    }
  }
  return f;
}

void TokenFile::copy(uint64_t start, uint64_t count, int32_t* out) const {
  if (width_ == 2) {
    const uint16_t* src = ids16() + start;
    for (uint64_t k = 0; k < count; ++k) out[k] = static_cast<int32_t>(src[k]);
  } else {
    const uint32_t* src = ids32() + start;
    for (uint64_t k = 0; k < count; ++k) out[k] = static_cast<int32_t>(src[k]);
  }
}

std::vector<int32_t> TokenFile::read_all() const {
  std::vector<int32_t> ids(count_);
  copy(0, count_, ids.data());
  return ids;
}

TokenFileWriter::TokenFileWriter(const fs::path& path, uint64_t vocab_size)
    : file_(path), vocab_(vocab_size), width_(token_id_width(vocab_size)) {
  if (vocab_size == 0 || vocab_size > 0xFFFFFFFFull)
    throw Error("cannot write token file " + path.string() + ": vocabulary size " +
                std::to_string(vocab_size) + " is outside 1..4294967295.");
  unsigned char header[kTokenFileHeaderBytes] = {};
  std::memcpy(header, kTokenFileMagic, 8);
  store_le<uint32_t>(header + 8, kTokenFileVersion);
  store_le<uint32_t>(header + 12, width_);
  store_le<uint32_t>(header + 16, static_cast<uint32_t>(vocab_size));
  store_le<uint32_t>(header + 20, kTokenFileHeaderBytes);
  store_le<uint64_t>(header + 24, 0);
  file_.write(header, sizeof header);
}

void TokenFileWriter::append(std::span<const uint32_t> ids) {
  buffer_.resize(ids.size() * width_);
  auto* out = reinterpret_cast<unsigned char*>(buffer_.data());
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] >= vocab_)
      throw Error("cannot write id " + std::to_string(ids[i]) + " to token file " +
                  file_.path().string() + ": the vocabulary has " + std::to_string(vocab_) + " ids.");
    if (width_ == 2) store_le<uint16_t>(out + 2 * i, static_cast<uint16_t>(ids[i]));
    else store_le<uint32_t>(out + 4 * i, ids[i]);
  }
  file_.write(buffer_.data(), buffer_.size());
  count_ += ids.size();
}

void TokenFileWriter::commit() {
  unsigned char count[8];
  store_le<uint64_t>(count, count_);
  file_.write_at(24, count, sizeof count);
  file_.commit();
}

void write_token_file(const fs::path& path, uint64_t vocab_size, std::span<const uint32_t> ids) {
  TokenFileWriter w(path, vocab_size);
  w.append(ids);
  w.commit();
}

}  // namespace magellano::data
