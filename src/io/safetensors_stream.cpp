// SafetensorsStreamWriter (also behind write_safetensors): the header ("__metadata__" first,
// names in data order, spaces to a multiple of 8 bytes), then tensors appended in order.
#include "magellano/io/safetensors_stream.hpp"

#include <set>

#include <nlohmann/json.hpp>

#include "magellano/io/atomic_file.hpp"
#include "magellano/io/json_file.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::io {

uint64_t StEntry::nbytes() const {
  return static_cast<uint64_t>(st_numel(shape)) * st_dtype_size(dtype);
}

SafetensorsStreamWriter::SafetensorsStreamWriter(const std::filesystem::path& path,
                                                 std::vector<StEntry> entries,
                                                 const std::map<std::string, std::string>& metadata)
    : path_(path), entries_(std::move(entries)) {
  const std::string where = "writing " + path.string() + ": ";
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    auto& m = header["__metadata__"] = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
  }
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const StEntry& e : entries_) {
    if (e.name.empty() || e.name == "__metadata__")
      throw Error(where + "a tensor may not be named \"" + e.name + "\"; rename it.");
    if (!seen.insert(e.name).second)
      throw Error(where + "tensor '" + e.name + "' appears twice; each name must be unique.");
    for (int64_t d : e.shape)
      if (d < 0) throw Error(where + "tensor '" + e.name + "' has a negative dimension in shape " +
                             st_shape_str(e.shape) + ".");
    nlohmann::ordered_json j = nlohmann::ordered_json::object();
    j["dtype"] = st_dtype_name(e.dtype);
    j["shape"] = e.shape;
    j["data_offsets"] = nlohmann::ordered_json::array({offset, offset + e.nbytes()});
    header[e.name] = std::move(j);
    offset += e.nbytes();
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    throw Error(where + "cannot encode the header: " + json_error_text(e));
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(uint64_t{text.size()} >> (8 * i));
  file_ = std::make_unique<AtomicFile>(path);
  file_->write(length, sizeof length);
  file_->write(text.data(), text.size());
  bytes_total_ = 8 + text.size() + offset;
}

SafetensorsStreamWriter::~SafetensorsStreamWriter() = default;

const StEntry* SafetensorsStreamWriter::next() const {
  return written_ < entries_.size() ? &entries_[written_] : nullptr;
}

void SafetensorsStreamWriter::write(const std::string& name, const void* data, uint64_t bytes) {
  const StEntry* e = next();
  if (!e || !file_)
    throw Error("writing " + path_.string() + ": tensor '" + name +
                "' was not declared (all declared tensors are written).");
  if (e->name != name)
    throw Error("writing " + path_.string() + ": expected tensor '" + e->name + "' next, got '" +
                name + "'.");
  if (e->nbytes() != bytes)
    throw Error("writing " + path_.string() + ": tensor '" + name + "' was declared with " +
                std::to_string(e->nbytes()) + " bytes, got " + std::to_string(bytes) + ".");
  file_->write(data, bytes);
  ++written_;
}

void SafetensorsStreamWriter::write(const std::string& name, const StTensor& t) {
  const StEntry* e = next();
  if (e && e->name == name && (e->dtype != t.dtype || e->shape != t.shape))
    throw Error("writing " + path_.string() + ": tensor '" + name + "' was declared as " +
                st_dtype_name(e->dtype) + " " + st_shape_str(e->shape) + ", got " +
                st_dtype_name(t.dtype) + " " + st_shape_str(t.shape) + ".");
  write(name, t.bytes.data(), t.bytes.size());
}

void SafetensorsStreamWriter::commit() {
  if (!file_) throw Error("writing " + path_.string() + ": already committed.");
  if (const StEntry* e = next())
    throw Error("writing " + path_.string() + ": tensor '" + e->name + "' and " +
                std::to_string(entries_.size() - written_ - 1) + " more were never written.");
  file_->commit();
  file_.reset();
}

}  // namespace magellano::io
