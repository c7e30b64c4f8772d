// write_safetensors: every tensor through SafetensorsStreamWriter (header with names in data
// order, "__metadata__" first, as the Python library writes it, padded to a multiple of 8
// bytes; an AtomicFile: temp file, fsync, rename), plus the dtype / shape / size helpers.
#include <algorithm>
#include <bit>

#include "magellano/io/safetensors.hpp"
#include "magellano/io/safetensors_stream.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::io {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; this host is not");

int64_t st_numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string st_shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

void write_safetensors(const std::filesystem::path& path,
                       const std::vector<std::pair<std::string, StTensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // Each tensor's bytes must match its dtype and shape; the stream writer checks the names and
  // shapes, builds the header and writes the file atomically.
  std::vector<StEntry> entries;
  for (const auto& [name, t] : tensors) {
    const bool sized = std::all_of(t.shape.begin(), t.shape.end(), [](int64_t d) { return d >= 0; });
    const uint64_t want = sized ? static_cast<uint64_t>(st_numel(t.shape)) * st_dtype_size(t.dtype) : 0;
    if (sized && t.bytes.size() != want)
      throw Error("write_safetensors(" + path.string() + "): tensor '" + name + "' (" + st_dtype_name(t.dtype) +
                  ", shape " + st_shape_str(t.shape) + ") needs " + std::to_string(want) + " bytes but has " +
                  std::to_string(t.bytes.size()) + ".");
    entries.push_back({name, t.dtype, t.shape});
  }
  SafetensorsStreamWriter w(path, std::move(entries), metadata);
  for (const auto& [name, t] : tensors) w.write(name, t.bytes.data(), t.bytes.size());
  w.commit();
}

}  // namespace magellano::io
