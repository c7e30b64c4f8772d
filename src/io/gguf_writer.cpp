// GgufWriter: metadata and tensor infos encoded as they are added, offsets assigned as tensors are
// added (each padded to the alignment), the data streamed tensor by tensor into an AtomicFile.
#include "magellano/io/gguf_writer.hpp"

#include <bit>
#include <cstring>
#include <unordered_set>

#include "magellano/io/atomic_file.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::io {

static_assert(std::endian::native == std::endian::little, "GGUF is little-endian; this host is not");

namespace {

template <typename T>
void put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}
void put_string(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out += s;
}
std::string typed(GgufValueType t) {
  std::string s;
  put<uint32_t>(s, static_cast<uint32_t>(t));
  return s;
}
uint64_t pad_to(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

}  // namespace

const char* ggml_type_name(GgmlType t) {
  switch (t) {
    case GgmlType::f32: return "F32";
    case GgmlType::f16: return "F16";
    case GgmlType::q8_0: return "Q8_0";
  }
  return "?";
}

int64_t ggml_block_size(GgmlType t) { return t == GgmlType::q8_0 ? 32 : 1; }
int64_t ggml_block_bytes(GgmlType t) { return t == GgmlType::q8_0 ? 34 : t == GgmlType::f16 ? 2 : 4; }

uint64_t ggml_nbytes(GgmlType t, const std::vector<int64_t>& ne) {
  uint64_t rows = 1;
  for (size_t i = 1; i < ne.size(); ++i) rows *= static_cast<uint64_t>(ne[i]);
  const int64_t ne0 = ne.empty() ? 1 : ne[0];
  return rows * static_cast<uint64_t>(ne0 / ggml_block_size(t)) * static_cast<uint64_t>(ggml_block_bytes(t));
}

GgufWriter::GgufWriter(uint32_t alignment) : alignment_(alignment) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0)
    throw Error("GGUF: the alignment must be a power of two, got " + std::to_string(alignment) + ".");
  if (alignment != kGgufDefaultAlignment) add_u32("general.alignment", alignment);
}

void GgufWriter::add_kv(const std::string& key, std::string encoded) {
  if (key.empty() || key.size() > 65535)
    throw Error("GGUF: a metadata key must have 1 to 65535 bytes, got " + std::to_string(key.size()) + ".");
  for (char c : key)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.'))
      throw Error("GGUF: metadata key '" + key + "' holds a character other than a-z, 0-9, '_' and '.'.");
  if (has_key(key)) throw Error("GGUF: metadata key '" + key + "' is added twice.");
  kvs_.push_back({key, std::move(encoded)});
}

bool GgufWriter::has_key(const std::string& key) const {
  for (const auto& kv : kvs_)
    if (kv.key == key) return true;
  return false;
}

void GgufWriter::add_u32(const std::string& key, uint32_t v) {
  std::string e = typed(GgufValueType::u32);
  put(e, v);
  add_kv(key, std::move(e));
}
void GgufWriter::add_i32(const std::string& key, int32_t v) {
  std::string e = typed(GgufValueType::i32);
  put(e, v);
  add_kv(key, std::move(e));
}
void GgufWriter::add_u64(const std::string& key, uint64_t v) {
  std::string e = typed(GgufValueType::u64);
  put(e, v);
  add_kv(key, std::move(e));
}
void GgufWriter::add_f32(const std::string& key, float v) {
  std::string e = typed(GgufValueType::f32);
  put(e, v);
  add_kv(key, std::move(e));
}
void GgufWriter::add_bool(const std::string& key, bool v) {
  std::string e = typed(GgufValueType::boolean);
  put<uint8_t>(e, v ? 1 : 0);
  add_kv(key, std::move(e));
}
void GgufWriter::add_string(const std::string& key, const std::string& v) {
  std::string e = typed(GgufValueType::string);
  put_string(e, v);
  add_kv(key, std::move(e));
}
void GgufWriter::add_array(const std::string& key, const std::vector<int32_t>& v) {
  std::string e = typed(GgufValueType::array);
  put<uint32_t>(e, static_cast<uint32_t>(GgufValueType::i32));
  put<uint64_t>(e, v.size());
  for (int32_t x : v) put(e, x);
  add_kv(key, std::move(e));
}
void GgufWriter::add_array(const std::string& key, const std::vector<float>& v) {
  std::string e = typed(GgufValueType::array);
  put<uint32_t>(e, static_cast<uint32_t>(GgufValueType::f32));
  put<uint64_t>(e, v.size());
  for (float x : v) put(e, x);
  add_kv(key, std::move(e));
}
void GgufWriter::add_array(const std::string& key, const std::vector<std::string>& v) {
  std::string e = typed(GgufValueType::array);
  put<uint32_t>(e, static_cast<uint32_t>(GgufValueType::string));
  put<uint64_t>(e, v.size());
  for (const auto& s : v) put_string(e, s);
  add_kv(key, std::move(e));
}

void GgufWriter::add_tensor(const std::string& name, const std::vector<int64_t>& ne, GgmlType type) {
  if (name.empty() || name.size() > 63)
    throw Error("GGUF: tensor name '" + name + "' must have 1 to 63 bytes (ggml's GGML_MAX_NAME).");
  for (const auto& t : tensors_)
    if (t.name == name) throw Error("GGUF: tensor '" + name + "' is added twice.");
  if (ne.empty() || ne.size() > 4)
    throw Error("GGUF: tensor '" + name + "' has " + std::to_string(ne.size()) + " dimensions; ggml takes 1 to 4.");
  for (int64_t d : ne)
    if (d < 1) throw Error("GGUF: tensor '" + name + "' has a dimension " + std::to_string(d) + " below 1.");
  if (ne[0] % ggml_block_size(type) != 0)
    throw Error("GGUF: tensor '" + name + "' has rows of " + std::to_string(ne[0]) + " values, not a multiple of " +
                ggml_type_name(type) + "'s block of " + std::to_string(ggml_block_size(type)) + ".");
  TensorInfo t{name, ne, type};
  t.offset = data_bytes_;
  t.bytes = ggml_nbytes(type, ne);
  data_bytes_ = pad_to(data_bytes_ + t.bytes, alignment_);
  tensors_.push_back(std::move(t));
}

void GgufWriter::write(const std::filesystem::path& path, const Producer& produce) const {
  std::string head;
  head += "GGUF";
  put<uint32_t>(head, kGgufVersion);
  put<uint64_t>(head, tensors_.size());
  put<uint64_t>(head, kvs_.size());
  for (const auto& kv : kvs_) {
    put_string(head, kv.key);
    head += kv.encoded;
  }
  for (const auto& t : tensors_) {
    put_string(head, t.name);
    put<uint32_t>(head, static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) put<uint64_t>(head, static_cast<uint64_t>(d));
    put<uint32_t>(head, static_cast<uint32_t>(t.type));
    put<uint64_t>(head, t.offset);
  }
  head.resize(pad_to(head.size(), alignment_), '\0');

  AtomicFile file(path);
  file.write(head.data(), head.size());
  std::vector<uint8_t> bytes;
  const std::vector<uint8_t> zeros(alignment_, 0);
  uint64_t at = 0;  // within the data section
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const TensorInfo& t = tensors_[i];
    bytes.clear();
    produce(i, bytes);
    if (bytes.size() != t.bytes)
      throw Error("GGUF " + path.string() + ": tensor '" + t.name + "' (" + ggml_type_name(t.type) + ") needs " +
                  std::to_string(t.bytes) + " bytes but " + std::to_string(bytes.size()) + " were given.");
    if (at != t.offset) throw Error("GGUF " + path.string() + ": internal offset mismatch at '" + t.name + "'.");
    file.write(bytes.data(), bytes.size());
    at += bytes.size();
    const uint64_t padded = pad_to(at, alignment_);
    file.write(zeros.data(), padded - at);
    at = padded;
  }
  file.commit();
}

}  // namespace magellano::io
