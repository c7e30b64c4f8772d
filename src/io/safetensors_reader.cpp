// SafetensorsReader: validates the header the way the reference implementation does (byte
// ranges sorted by offset must tile the data section exactly), then reads tensors on demand
// with pread() from a file descriptor shared by copies of the reader.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <tuple>

#include <nlohmann/json.hpp>

#include "magellano/io/safetensors.hpp"
#include "magellano/runtime/error.hpp"
#include "magellano/runtime/input_file.hpp"
#include "magellano/runtime/json_parse.hpp"

namespace magellano::io {

struct SafetensorsReader::File {
  InputFile file;
  int fd;
  explicit File(InputFile f) : file(std::move(f)), fd(file.fd()) {}
};

namespace {

// The reference implementation refuses headers above 100 MB; so do we (it bounds the memory a
// corrupt length can make us allocate).
constexpr uint64_t kMaxHeader = 100'000'000;

[[noreturn]] void fail(const std::filesystem::path& path, const std::string& what) {
  throw Error("safetensors file " + path.string() + ": " + what);
}

// Reads exactly n bytes at offset, or throws.
void pread_all(int fd, void* dst, uint64_t n, uint64_t offset, const std::filesystem::path& path) {
  auto* p = static_cast<char*>(dst);
  while (n > 0) {
    const ssize_t got = ::pread(fd, p, n, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) fail(path, std::string("read failed: ") + std::strerror(errno) + ".");
    if (got == 0) fail(path, "the file got shorter while being read; was it overwritten?");
    p += got;
    n -= static_cast<uint64_t>(got);
    offset += static_cast<uint64_t>(got);
  }
}

uint64_t as_u64(const nlohmann::json& v, bool& ok) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return static_cast<uint64_t>(v.get<int64_t>());
  ok = false;
  return 0;
}

}  // namespace

SafetensorsReader SafetensorsReader::open(const std::filesystem::path& path) {
  SafetensorsReader r;
  r.path_ = path;
  r.file_ = std::make_shared<File>(
      InputFile::open(path, "safetensors file", " Give the path of a .safetensors file."));
  const uint64_t size = r.file_->file.size();
  if (size < 8)
    fail(path, "too short (" + std::to_string(size) +
                   " bytes; a safetensors file starts with an 8-byte header length). Is it "
                   "truncated?");

  uint8_t len[8];
  pread_all(r.file_->fd, len, 8, 0, path);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t{len[i]} << (8 * i);
  if (n > size - 8)
    fail(path, "header length " + std::to_string(n) + " runs beyond the end of the file (" +
                   std::to_string(size) + " bytes). Is it truncated, or not a safetensors file?");
  if (n > kMaxHeader)
    fail(path, "header of " + std::to_string(n) + " bytes is larger than the 100 MB limit.");
  std::string text(n, '\0');
  pread_all(r.file_->fd, text.data(), n, 8, path);
  r.data_start_ = 8 + n;
  const uint64_t data_len = size - r.data_start_;

  // parse_json refuses a name (or any key) given twice, as the reference implementation does
  // (there a repeated name loses one entry, leaving its bytes unowned).
  const nlohmann::json header = parse_json(text, "safetensors file " + path.string() + ": header",
                                           " The file is corrupt or not a safetensors file.");
  if (!header.is_object())
    fail(path, std::string("header is a JSON ") + header.type_name() +
                   ", not an object. The file is corrupt or not a safetensors file.");

  for (const auto& [name, v] : header.items()) {
    if (name == "__metadata__") {
      if (!v.is_object()) fail(path, "\"__metadata__\" is not an object of strings.");
      for (const auto& [k, s] : v.items()) {
        if (!s.is_string())
          fail(path, "metadata entry \"" + excerpt(k) + "\" is a " + s.type_name() + ", not a string.");
        r.metadata_[k] = s.get<std::string>();
      }
      continue;
    }
    const std::string what = "tensor '" + excerpt(name) + "'";
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") ||
        !v.contains("data_offsets"))
      fail(path, what + " needs an object with \"dtype\", \"shape\" and \"data_offsets\".");
    const auto& jd = v.at("dtype");
    const auto dtype = jd.is_string() ? st_dtype_from_name(jd.get<std::string>()) : std::nullopt;
    if (!dtype)
      fail(path, what + " has unknown dtype " + json_excerpt(jd) +
                     "; Magellano reads F32, F16, BF16, U8, I32 and I64.");
    Entry e{name, *dtype, {}, 0, 0};
    const auto& js = v.at("shape");
    bool ok = js.is_array();
    uint64_t bytes = st_dtype_size(*dtype);
    for (size_t i = 0; ok && i < js.size(); ++i) {
      const uint64_t dim = as_u64(js[i], ok);
      if (dim > uint64_t{INT64_MAX} || __builtin_mul_overflow(bytes, dim, &bytes)) ok = false;
      e.shape.push_back(static_cast<int64_t>(dim));
    }
    if (!ok) fail(path, what + " has shape " + json_excerpt(js) + "; expected a list of sizes >= 0.");
    const auto& jo = v.at("data_offsets");
    ok = jo.is_array() && jo.size() == 2;
    if (ok) e.begin = as_u64(jo[0], ok), e.end = as_u64(jo[1], ok);
    if (!ok || e.end < e.begin)
      fail(path, what + " has data_offsets " + json_excerpt(jo) + "; expected [begin, end] with begin <= end.");
    if (e.end > data_len)
      fail(path, what + " has data_offsets " + json_excerpt(jo) + " beyond the data section (" +
                     std::to_string(data_len) + " bytes). Is the file truncated?");
    if (e.end - e.begin != bytes)
      fail(path, what + ": " + st_dtype_name(e.dtype) + " shape " + excerpt(st_shape_str(e.shape)) +
                     " needs " + std::to_string(bytes) + " bytes but data_offsets " + json_excerpt(jo) +
                     " hold " + std::to_string(e.end - e.begin) + ".");
    r.entries_.push_back(std::move(e));
  }

  // The byte ranges, in order, must tile [0, data_len): no gap, no overlap, no trailing bytes.
  std::sort(r.entries_.begin(), r.entries_.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  uint64_t pos = 0;
  for (size_t i = 0; i < r.entries_.size(); ++i) {
    const Entry& e = r.entries_[i];
    if (e.begin < pos)
      fail(path, "tensor '" + excerpt(e.name) + "' overlaps tensor '" + excerpt(r.entries_[i - 1].name) +
                     "' in the data section. The file is corrupt.");
    if (e.begin > pos)
      fail(path, "bytes [" + std::to_string(pos) + ", " + std::to_string(e.begin) +
                     ") of the data section belong to no tensor. The file is corrupt.");
    pos = e.end;
    r.index_[e.name] = i;
  }
  if (pos != data_len)
    fail(path, "the tensors cover " + std::to_string(pos) + " of the data section's " +
                   std::to_string(data_len) + " bytes. The file is corrupt or has trailing data.");
  return r;
}

std::vector<std::string> SafetensorsReader::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const Entry& e : entries_) out.push_back(e.name);
  return out;
}

bool SafetensorsReader::contains(const std::string& name) const { return index_.count(name) > 0; }

const SafetensorsReader::Entry& SafetensorsReader::find(const std::string& name) const {
  const auto it = index_.find(name);
  if (it != index_.end()) return entries_[it->second];
  std::string some;
  for (size_t i = 0; i < entries_.size() && i < 5; ++i) some += (i ? ", " : "") + excerpt(entries_[i].name);
  if (entries_.size() > 5) some += ", ...";
  fail(path_, "has no tensor '" + excerpt(name) + "' (it holds " + std::to_string(entries_.size()) +
                  " tensors" + (some.empty() ? "" : ": " + some) +
                  "). Is it the right file for this model?");
}

StDType SafetensorsReader::dtype(const std::string& name) const { return find(name).dtype; }
std::vector<int64_t> SafetensorsReader::shape(const std::string& name) const {
  return find(name).shape;
}

StTensor SafetensorsReader::read(const std::string& name) const {
  const Entry& e = find(name);
  StTensor t{e.dtype, e.shape, std::vector<uint8_t>(e.end - e.begin)};
  pread_all(file_->fd, t.bytes.data(), t.bytes.size(), data_start_ + e.begin, path_);
  return t;
}

void SafetensorsReader::read_into(const std::string& name, void* dst, uint64_t bytes) const {
  const Entry& e = find(name);
  if (bytes != e.end - e.begin)
    fail(path_, "tensor '" + excerpt(name) + "' holds " + std::to_string(e.end - e.begin) +
                    " bytes, not the " + std::to_string(bytes) + " asked for.");
  pread_all(file_->fd, dst, bytes, data_start_ + e.begin, path_);
}

int64_t SafetensorsReader::f32_rows(const std::string& name) const {
  const Entry& e = find(name);
  const int64_t cols = e.shape.empty() ? 1 : std::max<int64_t>(1, e.shape.back());
  return st_numel(e.shape) / cols;
}

std::vector<float> SafetensorsReader::read_f32(const std::string& name) const {
  return read_rows_f32(name, 0, f32_rows(name));
}

void SafetensorsReader::read_f32_into(const std::string& name, float* dst) const {
  read_f32_at(locate_rows_f32(name, 0, f32_rows(name)), dst);
}

SafetensorsReader::F32Rows SafetensorsReader::locate_rows_f32(const std::string& name, int64_t row_begin,
                                                              int64_t row_end) const {
  const Entry& e = find(name);
  if (e.dtype != StDType::F32 && e.dtype != StDType::F16 && e.dtype != StDType::BF16)
    fail(path_, "tensor '" + excerpt(name) + "' is " + st_dtype_name(e.dtype) +
                    "; only F32, F16 and BF16 convert to f32.");
  const int64_t cols = e.shape.empty() ? 1 : std::max<int64_t>(1, e.shape.back());
  const int64_t rows = st_numel(e.shape) / cols;
  if (row_begin < 0 || row_end < row_begin || row_end > rows)
    fail(path_, "tensor '" + excerpt(name) + "' " + st_shape_str(e.shape) + " has " + std::to_string(rows) +
                    " rows; rows [" + std::to_string(row_begin) + ", " + std::to_string(row_end) + ") were asked for.");
  const uint64_t size = st_dtype_size(e.dtype);
  return {e.dtype, data_start_ + e.begin + static_cast<uint64_t>(row_begin * cols) * size,
          static_cast<uint64_t>((row_end - row_begin) * cols)};
}

std::vector<float> SafetensorsReader::read_rows_f32(const std::string& name, int64_t row_begin, int64_t row_end) const {
  const F32Rows at = locate_rows_f32(name, row_begin, row_end);
  std::vector<float> out(at.count);
  read_f32_at(at, out.data());
  return out;
}

void SafetensorsReader::read_f32_at(const F32Rows& at, float* dst) const {
  if (at.dtype == StDType::F32) {  // straight into the result: no second copy
    pread_all(file_->fd, dst, at.count * 4, at.offset, path_);
    return;
  }
  std::vector<uint16_t> half(std::min<uint64_t>(at.count, uint64_t{1} << 18));  // 512 KiB pieces
  for (uint64_t done = 0; done < at.count;) {
    const uint64_t k = std::min<uint64_t>(half.size(), at.count - done);
    pread_all(file_->fd, half.data(), k * 2, at.offset + done * 2, path_);
    for (uint64_t i = 0; i < k; ++i)
      dst[done + i] = at.dtype == StDType::F16 ? f16_to_f32(half[i]) : bf16_to_f32(half[i]);
    done += k;
  }
}

}  // namespace magellano::io
