// Writing GGUF files (version 3), the model format of ggml / llama.cpp, as ggml's docs/gguf.md
// specifies it and gguf-py's GGUFWriter writes it. Little-endian throughout:
//   header      u32 magic "GGUF" (bytes 47 47 55 46), u32 version 3, u64 tensor count,
//               u64 metadata key/value count
//   metadata    per key: string key, u32 value type, value
//                 string = u64 byte length + bytes (no terminator)
//                 array  = u32 element type, u64 count, elements
//   tensor info per tensor: string name, u32 n_dims, u64 ne[n_dims] (ggml order: ne[0] is the
//               fastest-varying dimension, i.e. a row-major (rows, cols) matrix is ne = {cols, rows}),
//               u32 ggml type, u64 offset of its data from the start of the data section
//   padding     zeros up to a multiple of the alignment (general.alignment, u32; 32 when absent)
//   data        each tensor's bytes at its offset, every offset a multiple of the alignment
// Keys are unique, lower-case ASCII with dots ("llama.block_count"); tensor names unique and at
// most 63 bytes (ggml's GGML_MAX_NAME 64 with the terminator); at most 4 dimensions.
// The file is written through an AtomicFile: nothing is left at the path unless it is complete.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace magellano::io {

// gguf_type: the metadata value types.
enum class GgufValueType : uint32_t {
  u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7, string = 8, array = 9,
  u64 = 10, i64 = 11, f64 = 12
};

// ggml_type: the tensor element types written here.
enum class GgmlType : uint32_t { f32 = 0, f16 = 1, q8_0 = 8 };
const char* ggml_type_name(GgmlType t);  // "F32", "F16", "Q8_0"
// Values per block and bytes per block: F32 1/4, F16 1/2, Q8_0 32/34 (fp16 scale + 32 int8).
int64_t ggml_block_size(GgmlType t);
int64_t ggml_block_bytes(GgmlType t);
// Bytes of a tensor of dims ne (ne[0] must be a multiple of the block size).
uint64_t ggml_nbytes(GgmlType t, const std::vector<int64_t>& ne);

constexpr uint32_t kGgufVersion = 3;
constexpr uint32_t kGgufDefaultAlignment = 32;

class GgufWriter {
 public:
  // alignment: a power of two; written as general.alignment when it is not the default 32.
  explicit GgufWriter(uint32_t alignment = kGgufDefaultAlignment);

  // Metadata, in the order added. A key added twice, or one that is not lower-case ASCII
  // letters, digits, '_' and '.', throws magellano::Error.
  void add_u32(const std::string& key, uint32_t v);
  void add_i32(const std::string& key, int32_t v);
  void add_u64(const std::string& key, uint64_t v);
  void add_f32(const std::string& key, float v);
  void add_bool(const std::string& key, bool v);
  void add_string(const std::string& key, const std::string& v);
  void add_array(const std::string& key, const std::vector<int32_t>& v);      // INT32 elements
  void add_array(const std::string& key, const std::vector<float>& v);        // FLOAT32 elements
  void add_array(const std::string& key, const std::vector<std::string>& v);  // STRING elements
  bool has_key(const std::string& key) const;

  // A tensor of dims ne (ggml order, 1 to 4 dims, each >= 1) and type; its data comes later, in
  // the order tensors were added. Throws for a bad or repeated name, bad dims, or an ne[0] that
  // the type's block size does not divide.
  void add_tensor(const std::string& name, const std::vector<int64_t>& ne, GgmlType type);
  size_t tensor_count() const { return tensors_.size(); }

  // Writes the file: header, metadata, tensor infos, then for each tensor i (in order)
  // produce(i, bytes) must fill `bytes` with exactly ggml_nbytes of it. Atomic (io/atomic_file.hpp);
  // throws magellano::Error naming the path on a failed write or a wrong byte count.
  using Producer = std::function<void(size_t index, std::vector<uint8_t>& bytes)>;
  void write(const std::filesystem::path& path, const Producer& produce) const;

 private:
  struct Kv {
    std::string key;
    std::string encoded;  // u32 type + value, little-endian
  };
  struct TensorInfo {
    std::string name;
    std::vector<int64_t> ne;
    GgmlType type;
    uint64_t offset = 0, bytes = 0;
  };
  void add_kv(const std::string& key, std::string encoded);
  uint32_t alignment_;
  std::vector<Kv> kvs_;
  std::vector<TensorInfo> tensors_;
  uint64_t data_bytes_ = 0;  // the data section so far (each tensor padded to the alignment)
};

}  // namespace magellano::io
