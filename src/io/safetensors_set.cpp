// SafetensorsSet: one file, or an index and its shards, opened and cross-checked up front.
#include "magellano/io/safetensors_set.hpp"

#include <algorithm>

#include "magellano/runtime/error.hpp"
#include "magellano/runtime/input_file.hpp"
#include "magellano/runtime/json_parse.hpp"

namespace magellano::io {

namespace fs = std::filesystem;

namespace {

// A shard name must stay inside the checkpoint folder: relative, no "..", not empty. (Symbolic
// links are followed as they are: the Hugging Face hub cache links shards into a blobs folder.)
bool inside_folder(const std::string& name) {
  if (name.empty() || name.find('\0') != std::string::npos) return false;
  const fs::path p(name);
  if (p.is_absolute() || p.has_root_name() || p.has_root_directory()) return false;
  for (const auto& part : p)
    if (part == "..") return false;
  return p.has_filename() && p.filename() != ".";  // a file: not "dir/" or "."
}

}  // namespace

std::map<std::string, std::string> parse_safetensors_index(std::string_view text, const std::string& source) {
  const nlohmann::json j = parse_json(text, source, " Download the index again.");
  const auto bad = [&source](const std::string& what) -> Error {
    return Error(source + ": " + what + " A sharded checkpoint's index maps each tensor name to its shard file: "
                 "{\"weight_map\": {\"<tensor>\": \"model-00001-of-00002.safetensors\", ...}}.");
  };
  if (!j.is_object()) throw bad("is " + json_excerpt(j) + ", not a JSON object.");
  const auto it = j.find("weight_map");
  if (it == j.end()) throw bad("has no \"weight_map\".");
  if (!it->is_object()) throw bad("\"weight_map\" is " + json_excerpt(*it) + ", not an object.");
  if (it->empty()) throw bad("\"weight_map\" lists no tensors.");
  std::map<std::string, std::string> out;
  for (auto e = it->begin(); e != it->end(); ++e) {
    if (!e.value().is_string())
      throw bad("tensor " + json_excerpt(e.key()) + " maps to " + json_excerpt(e.value()) + ", not a file name.");
    const std::string shard = e.value().get<std::string>();
    if (!inside_folder(shard))
      throw Error(source + ": tensor " + json_excerpt(e.key()) + " maps to shard " + json_excerpt(shard) +
                  ", which is not a file inside the checkpoint folder (absolute paths and \"..\" are refused).");
    out.emplace(e.key(), shard);
  }
  return out;
}

SafetensorsSet SafetensorsSet::of(SafetensorsReader reader) {
  SafetensorsSet s;
  s.path_ = reader.path();
  s.files_.push_back(std::move(reader));
  return s;
}

bool SafetensorsSet::present(const fs::path& dir) {
  std::error_code ec;
  return fs::exists(dir / kSafetensorsFile, ec) || fs::exists(dir / kSafetensorsIndex, ec);
}

SafetensorsSet SafetensorsSet::open(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return of(SafetensorsReader::open(path));
  // Anything at model.safetensors (even a folder or a FIFO) is opened, so that it gets the
  // reader's own message rather than being passed over for an index.
  if (fs::exists(path / kSafetensorsFile, ec)) return of(SafetensorsReader::open(path / kSafetensorsFile));
  const fs::path index_path = path / kSafetensorsIndex;
  if (!fs::exists(index_path, ec))
    throw Error(path.string() + " has no weights: neither " + kSafetensorsFile + " nor " + kSafetensorsIndex +
                " (a sharded checkpoint). Is the download complete?");
  const std::string source = "safetensors index " + index_path.string();
  const auto map = parse_safetensors_index(read_whole_file(index_path, "safetensors index"), source);

  SafetensorsSet s;
  s.path_ = index_path;
  std::vector<std::string> shards;
  for (const auto& [name, shard] : map) shards.push_back(shard);
  std::sort(shards.begin(), shards.end());
  shards.erase(std::unique(shards.begin(), shards.end()), shards.end());
  std::map<std::string, size_t> position;
  for (const std::string& shard : shards) {
    const fs::path file = path / shard;
    if (!fs::exists(file, ec))
      throw Error(source + " names the shard " + excerpt(shard) + ", which is missing from " + path.string() +
                  ". Download every shard the index lists.");
    position[shard] = s.files_.size();
    s.files_.push_back(SafetensorsReader::open(file));
  }
  for (const auto& [name, shard] : map) {
    const SafetensorsReader& r = s.files_[position.at(shard)];
    if (!r.contains(name))
      throw Error(source + " places tensor '" + excerpt(name) + "' in " + excerpt(shard) + ", which has no such tensor: the index and "
                  "the shards disagree. Download them again.");
    s.index_.emplace(name, position.at(shard));
  }
  return s;
}

std::vector<std::string> SafetensorsSet::names() const {
  std::vector<std::string> out;
  for (size_t f = 0; f < files_.size(); ++f)
    for (std::string& n : files_[f].names())
      if (index_.empty() || (index_.count(n) && index_.at(n) == f)) out.push_back(std::move(n));
  return out;
}

bool SafetensorsSet::contains(const std::string& name) const {
  return index_.empty() ? files_.front().contains(name) : index_.count(name) > 0;
}

const SafetensorsReader& SafetensorsSet::reader(const std::string& name) const {
  if (index_.empty()) return files_.front();  // its own lookup names the file for a missing tensor
  const auto it = index_.find(name);
  if (it == index_.end()) throw Error(path_.string() + " lists no tensor '" + excerpt(name) + "'.");
  return files_[it->second];
}

uint64_t SafetensorsSet::total_bytes() const {
  uint64_t n = 0;
  for (const auto& f : files_) n += fs::file_size(f.path());
  return n;
}

}  // namespace magellano::io
