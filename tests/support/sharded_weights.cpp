#include "sharded_weights.hpp"

#include <cstdio>

#include "magellano/io/json_file.hpp"
#include "magellano/io/safetensors_device.hpp"

namespace mgtest {

std::string shard_name(int k, int n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05d-of-%05d.safetensors", k, n);
  return buf;
}

void write_sharded_safetensors(const std::filesystem::path& dir, const NamedTensors& tensors, int shards) {
  nlohmann::json map = nlohmann::json::object();
  uint64_t total = 0;
  const size_t n = tensors.size(), per = (n + shards - 1) / shards;
  for (int k = 0; k < shards; ++k) {
    NamedTensors part;
    for (size_t i = k * per; i < std::min(n, (k + 1) * per); ++i) {
      part.push_back(tensors[i]);
      map[tensors[i].first] = shard_name(k + 1, shards);
      total += tensors[i].second.bytes.size();
    }
    magellano::io::write_safetensors(dir / shard_name(k + 1, shards), part, {{"format", "pt"}});
  }
  magellano::io::write_json_atomically(dir / "model.safetensors.index.json",
                                       {{"metadata", {{"total_size", total}}}, {"weight_map", map}});
}

NamedTensors tensors_of(const std::vector<magellano::nn::Parameter>& params) {
  NamedTensors out;
  for (const auto& p : params) out.emplace_back(p.name, magellano::io::to_st(p.tensor));
  return out;
}

}  // namespace mgtest
