// Safetensors files (the Hugging Face weight format), written and read on the host.
//
// Layout of a file:
//   bytes [0, 8)        N: the header's length in bytes, an unsigned 64-bit little-endian integer
//   bytes [8, 8 + N)    the header: UTF-8 JSON, one object
//                         { "<name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [b, e]},
//                           ...,
//                           "__metadata__": {"<key>": "<string value>", ...} }   (optional)
//                       padded with spaces so that 8 + N is a multiple of 8
//   bytes [8 + N, end)  the data section: each tensor's elements, row-major, little-endian, at
//                       [b, e) relative to the data section's start. The ranges tile the data
//                       section exactly: no gaps, no overlaps, nothing after the last one.
// A 0-d tensor has shape [] and one element; a tensor with a 0 in its shape has b == e.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "magellano/io/st_dtype.hpp"

namespace magellano::io {

struct StTensor {
  StDType dtype = StDType::F32;
  std::vector<int64_t> shape;  // [] for a scalar
  std::vector<uint8_t> bytes;  // numel(shape) * st_dtype_size(dtype) bytes, little-endian
};

// Elements in a shape (1 for []).
int64_t st_numel(const std::vector<int64_t>& shape);
// "[2, 3]"
std::string st_shape_str(const std::vector<int64_t>& shape);

// Writes `tensors` (data in the given order) and `metadata` to `path`. The file is written to a
// temporary name beside `path`, fsync'd and renamed, so a crash never leaves a half file under
// the real name. Throws magellano::Error for a duplicate or empty name, the reserved name
// "__metadata__", a byte count that does not match dtype and shape, or an I/O failure.
void write_safetensors(const std::filesystem::path& path,
                       const std::vector<std::pair<std::string, StTensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// A validated safetensors file, read lazily: open() reads and checks only the header; read()
// reads one tensor's bytes with pread(), so memory stays at about one tensor. The reader keeps
// the file open (copies share it), so a file renamed over the path later does not affect it.
class SafetensorsReader {
 public:
  // Throws magellano::Error (one line naming the file) if the file is missing, too short, its
  // header length runs past the end, the header is not a JSON object, a dtype is unknown, a shape
  // disagrees with its byte range, or the byte ranges leave gaps, overlap or run out of the data.
  static SafetensorsReader open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  std::vector<std::string> names() const;  // in data order
  bool contains(const std::string& name) const;
  StDType dtype(const std::string& name) const;
  std::vector<int64_t> shape(const std::string& name) const;
  StTensor read(const std::string& name) const;
  // Reads the stored bytes of `name` into dst, which must hold exactly `bytes` (its size).
  void read_into(const std::string& name, void* dst, uint64_t bytes) const;
  // Values as f32, converted from F16 or BF16; other dtypes throw.
  std::vector<float> read_f32(const std::string& name) const;
  // The same into dst, which holds the tensor's element count (a buffer used again and again
  // costs no fresh pages; F16 / BF16 convert piece by piece, with no whole-tensor copy).
  void read_f32_into(const std::string& name, float* dst) const;
  // Rows [row_begin, row_end) of the tensor viewed as (rows, last dim), as f32 (one read of just
  // those bytes: an expert's slice of a packed (X, 2F, D) tensor without the rest).
  std::vector<float> read_rows_f32(const std::string& name, int64_t row_begin, int64_t row_end) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  struct Entry {
    std::string name;
    StDType dtype;
    std::vector<int64_t> shape;
    uint64_t begin, end;  // relative to the data section
  };
  struct File;  // the open file descriptor, shared by copies
  const Entry& find(const std::string& name) const;
  // Where rows [row_begin, row_end) of `name` lie (checked: a float dtype, the range), and
  // reading them as f32 into dst.
  struct F32Rows {
    StDType dtype;
    uint64_t offset, count;  // in the file; values
  };
  F32Rows locate_rows_f32(const std::string& name, int64_t row_begin, int64_t row_end) const;
  void read_f32_at(const F32Rows& at, float* dst) const;
  int64_t f32_rows(const std::string& name) const;  // rows of the (rows, last dim) view

  std::filesystem::path path_;
  std::shared_ptr<File> file_;
  uint64_t data_start_ = 0;
  std::vector<Entry> entries_;           // in data order
  std::map<std::string, size_t> index_;  // name -> entries_ position
  std::map<std::string, std::string> metadata_;
};

}  // namespace magellano::io
