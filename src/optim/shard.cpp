#include "magellano/optim/shard.hpp"

#include <algorithm>

#include "magellano/optim/dynamic_map.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::optim {

std::vector<ElementRange> shard_ranges(const std::vector<int64_t>& chunk_numel, int shard, int shards) {
  if (shards < 1 || shard < 0 || shard >= shards)
    throw Error("ZeRO: shard " + std::to_string(shard) + " of " + std::to_string(shards) + " does not exist.");
  int64_t total = 0;
  for (int64_t n : chunk_numel) total += n;
  // Cut r as a position over the chunks laid end to end, moved to a block boundary of its chunk.
  const auto cut = [&](int r) -> int64_t {
    if (r <= 0) return 0;
    if (r >= shards) return total;
    const int64_t at = static_cast<int64_t>((static_cast<__int128>(total) * r) / shards);
    int64_t start = 0;
    for (int64_t n : chunk_numel) {
      if (at < start + n) return start + std::min(n, (at - start + kQuantBlock - 1) / kQuantBlock * kQuantBlock);
      start += n;
    }
    return total;
  };
  const int64_t lo = cut(shard), hi = cut(shard + 1);
  std::vector<ElementRange> out;
  int64_t start = 0;
  for (int64_t n : chunk_numel) {
    const int64_t b = std::clamp<int64_t>(lo - start, 0, n), e = std::clamp<int64_t>(hi - start, 0, n);
    out.push_back(b < e ? ElementRange{b, e} : ElementRange{b, b});
    start += n;
  }
  return out;
}

std::vector<ElementRange> shard_ranges(const ParameterPack& pack, int shard, int shards) {
  std::vector<int64_t> numel;
  for (const auto& c : pack.chunks()) numel.push_back(c.numel);
  return shard_ranges(numel, shard, shards);
}

}  // namespace magellano::optim
