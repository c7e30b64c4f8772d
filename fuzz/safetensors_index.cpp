// The index of a sharded checkpoint (model.safetensors.index.json): an index that parses maps
// every tensor to a shard name that stays inside the checkpoint folder (relative, no "..").
#include <filesystem>

#include "fuzz_support.hpp"
#include "magellano/io/safetensors_set.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::clear_errors_only([&] {
    const auto map = magellano::io::parse_safetensors_index({reinterpret_cast<const char*>(data), size}, "index");
    if (map.empty()) std::abort();  // an empty weight_map is refused
    for (const auto& [name, shard] : map) {
      const std::filesystem::path p(shard);
      if (shard.empty() || p.is_absolute()) std::abort();
      for (const auto& part : p)
        if (part == "..") std::abort();
    }
  });
  return 0;
}
