// write_safetensors: builds the header (names in data order, "__metadata__" first, as the
// Python library writes it), pads it with spaces to a multiple of 8 bytes, then streams the
// tensors' bytes through an AtomicFile (temp file, fsync, rename).
#include <bit>
#include <set>

#include <nlohmann/json.hpp>

#include "magellano/data/atomic_file.hpp"
#include "magellano/io/json_file.hpp"
#include "magellano/io/safetensors.hpp"
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
  const std::string where = "write_safetensors(" + path.string() + "): ";
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    auto& m = header["__metadata__"] = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
  }
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name.empty() || name == "__metadata__")
      throw Error(where + "a tensor may not be named \"" + name + "\"; rename it.");
    if (!seen.insert(name).second)
      throw Error(where + "tensor '" + name + "' appears twice; each name must be unique.");
    for (int64_t d : t.shape)
      if (d < 0) throw Error(where + "tensor '" + name + "' has a negative dimension in shape " +
                             st_shape_str(t.shape) + ".");
    const uint64_t want = static_cast<uint64_t>(st_numel(t.shape)) * st_dtype_size(t.dtype);
    if (t.bytes.size() != want)
      throw Error(where + "tensor '" + name + "' (" + st_dtype_name(t.dtype) + ", shape " +
                  st_shape_str(t.shape) + ") needs " + std::to_string(want) + " bytes but has " +
                  std::to_string(t.bytes.size()) + ".");
    nlohmann::ordered_json e = nlohmann::ordered_json::object();
    e["dtype"] = st_dtype_name(t.dtype);
    e["shape"] = t.shape;
    e["data_offsets"] = nlohmann::ordered_json::array({offset, offset + want});
    header[name] = std::move(e);
    offset += want;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {  // e.g. a name that is not valid UTF-8
    throw Error(where + "cannot encode the header: " + json_error_text(e));
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-byte aligned

  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(uint64_t{text.size()} >> (8 * i));
  data::AtomicFile f(path);
  f.write(length, sizeof length);
  f.write(text.data(), text.size());
  for (const auto& [name, t] : tensors) f.write(t.bytes.data(), t.bytes.size());
  f.commit();
}

}  // namespace magellano::io
