// Writing a checkpoint's weights the way Hugging Face shards them, for the tests of sharded
// loading (io/safetensors_set.hpp).
#pragma once
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "magellano/io/safetensors.hpp"
#include "magellano/nn/module.hpp"

namespace mgtest {

using NamedTensors = std::vector<std::pair<std::string, magellano::io::StTensor>>;

// Shard k of n's file name: "model-0000k-of-0000n.safetensors" (transformers' pattern).
std::string shard_name(int k, int n);
// Writes `tensors` into `shards` files of consecutive runs (about equal counts, in order) and
// model.safetensors.index.json mapping every name to its file, with metadata.total_size.
void write_sharded_safetensors(const std::filesystem::path& dir, const NamedTensors& tensors, int shards);
// Every parameter of a module (e.g. a model) as stored.
NamedTensors tensors_of(const std::vector<magellano::nn::Parameter>& params);

}  // namespace mgtest
