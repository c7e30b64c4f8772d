// The weights of a checkpoint folder as one set of named tensors, whether they are one file or
// sharded the way Hugging Face writes checkpoints above ~5 GB:
//
//   model.safetensors                    one file; or
//   model.safetensors.index.json         {"metadata": {"total_size": N, ...},
//                                         "weight_map": {"<tensor name>": "model-00001-of-00003.safetensors", ...}}
//   model-0000k-of-0000n.safetensors     the shards it names, beside it
//
// With both model.safetensors and an index present, the single file wins, as in transformers
// (PreTrainedModel.from_pretrained looks for model.safetensors before the index). Every shard is
// opened once, up front (its header read and validated; tensors are read lazily), and every
// tensor the index lists must be in its shard, so a broken set is refused before anything loads.
// Tensors that a shard holds but the index does not list are not part of the set (transformers
// resolves names through the index too).
//
// The query API is SafetensorsReader's; reader(name) hands out the shard holding a tensor, so
// the functions that take a reader (load_into, load_nf4, ...) serve a set without a copy of
// their own.
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "magellano/io/safetensors.hpp"

namespace magellano::io {

inline constexpr const char* kSafetensorsFile = "model.safetensors";
inline constexpr const char* kSafetensorsIndex = "model.safetensors.index.json";

// An index's text → tensor name → shard file name. Throws magellano::Error, one line naming
// `source`, when the text is not JSON (runtime/json_parse limits), not an object, has no
// "weight_map" object or an empty one, or maps a name to anything but a plain relative file path
// inside the folder (a string, not empty, not absolute, no ".." component).
std::map<std::string, std::string> parse_safetensors_index(std::string_view text, const std::string& source);

class SafetensorsSet {
 public:
  // `path`: a checkpoint folder (its model.safetensors, else its index and shards) or one
  // .safetensors file. Throws magellano::Error (one line) when the folder has neither, the index
  // is malformed (parse_safetensors_index), a shard is missing or not valid safetensors, or a
  // tensor the index lists is absent from its shard.
  static SafetensorsSet open(const std::filesystem::path& path);
  // The set of one open file.
  static SafetensorsSet of(SafetensorsReader reader);
  // Whether `dir` holds weights of either form (model.safetensors or the index).
  static bool present(const std::filesystem::path& dir);

  // What the set was opened from, for messages: the file, or the index.
  const std::filesystem::path& path() const { return path_; }
  bool sharded() const { return files_.size() > 1 || !index_.empty(); }
  const std::vector<SafetensorsReader>& files() const { return files_; }  // each shard once, in name order

  std::vector<std::string> names() const;  // shard by shard, in each shard's data order
  bool contains(const std::string& name) const;
  // The file holding `name`. For a name not in the set: the index set throws magellano::Error
  // naming the index; the one-file set returns its file, whose own lookups throw naming it.
  const SafetensorsReader& reader(const std::string& name) const;
  StDType dtype(const std::string& name) const { return reader(name).dtype(name); }
  std::vector<int64_t> shape(const std::string& name) const { return reader(name).shape(name); }
  StTensor read(const std::string& name) const { return reader(name).read(name); }
  void read_into(const std::string& name, void* dst, uint64_t bytes) const { reader(name).read_into(name, dst, bytes); }
  std::vector<float> read_f32(const std::string& name) const { return reader(name).read_f32(name); }
  void read_f32_into(const std::string& name, float* dst) const { reader(name).read_f32_into(name, dst); }
  std::vector<float> read_rows_f32(const std::string& name, int64_t row_begin, int64_t row_end) const {
    return reader(name).read_rows_f32(name, row_begin, row_end);
  }
  // The first file's __metadata__ (shards written by transformers each carry {"format": "pt"}).
  const std::map<std::string, std::string>& metadata() const { return files_.front().metadata(); }
  uint64_t total_bytes() const;  // the files' sizes together

 private:
  std::filesystem::path path_;
  std::vector<SafetensorsReader> files_;
  std::map<std::string, size_t> index_;  // name -> files_ position; empty for one file (it holds every name)
};

}  // namespace magellano::io
