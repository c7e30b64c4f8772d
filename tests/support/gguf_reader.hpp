// A GGUF reader for tests, written from ggml's docs/gguf.md independently of io/gguf_writer.cpp:
// parses a whole file into its metadata values and tensor infos, checking the magic, version 3,
// that every length stays inside the file, the alignment of the data section and of every tensor
// offset, and that each tensor's bytes lie inside the file.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace mgtest {

struct GgufValue {
  uint32_t type = 0;  // gguf_type of the value (9 = array)
  uint32_t elem_type = 0;  // arrays: the element type
  // Scalars: the number as a double (and, for integer types, as integers), a bool, or a string;
  // arrays: one of the vectors (`ints` holds integer and bool elements, `numbers` every number).
  double number = 0;
  int64_t integer = 0;
  uint64_t uinteger = 0;
  bool boolean = false;
  std::string str;
  std::vector<int64_t> ints;
  std::vector<double> numbers;
  std::vector<std::string> strings;
};

struct GgufTensorEntry {
  std::string name;
  std::vector<int64_t> ne;
  uint32_t type = 0;
  uint64_t offset = 0;  // from the data section's start
  std::vector<uint8_t> bytes;  // its data (size from the type and ne)
};

struct GgufFile {
  uint32_t version = 0;
  uint32_t alignment = 32;
  uint64_t data_start = 0;  // absolute file offset of the data section
  std::vector<std::string> key_order;
  std::map<std::string, GgufValue> kv;
  std::vector<GgufTensorEntry> tensors;
  const GgufTensorEntry* tensor(const std::string& name) const;
};

// Throws std::runtime_error with what is wrong.
GgufFile read_gguf(const std::filesystem::path& path);

// A tensor's values as doubles: F32 and F16 decoded, Q8_0 dequantized (d · q).
std::vector<double> gguf_values(const GgufTensorEntry& t);

// float64 references of the ggml encodings (for the tests' comparisons):
// binary16 bits of v rounded to nearest even (overflow to infinity), from the bit fields.
uint16_t ref_half_bits(double v);
// One Q8_0 block of 32 values as ggml's rule says, in float64: amax = max |x|, d = amax / 127,
// scale bits = ref_half_bits(d), q[j] = x[j] / d rounded half away from zero (0 when d = 0).
// near_tie[j] is set where x[j] / d lies within 1e-4 of a half-integer (there fp32 arithmetic
// may round the other way).
void ref_q8_0_block(const float* x, uint16_t& scale_bits, int8_t q[32], bool near_tie[32]);

}  // namespace mgtest
