// ZeRO stage 1's split of a ParameterPack among ranks: which elements' AdamW moments each rank
// keeps and updates (optim::AdamWConfig::shard / shards; train/zero_shard.hpp moves the updated
// parameters and gathers the moments).
//
// The split is contiguous over the chunks laid end to end (chunk 0's elements, then chunk 1's,
// ...): the T elements, padding included, are cut at r·T / shards for r = 1 .. shards - 1, and
// each cut moves up to the next multiple of 256 elements from its chunk's start (or the chunk's
// end), so that every share of a chunk starts where an int8 block starts (optim/dynamic_map.hpp:
// blocks of 256 from the chunk's start; a block is never split between ranks) and holds whole
// step-kernel vectors. Shard s owns the elements between cuts s and s + 1: in each chunk one
// range (often empty), and the ranges of shards 0, 1, ... of a chunk follow each other in
// shard order and cover it. With one shard, each chunk's range is the whole chunk.
#pragma once
#include <cstdint>
#include <vector>

#include "magellano/optim/pack.hpp"

namespace magellano::optim {

struct ElementRange {
  int64_t begin = 0, end = 0;  // elements [begin, end) of a chunk
  int64_t size() const { return end - begin; }
  bool operator==(const ElementRange&) const = default;
};

// Shard `shard`'s range in each chunk, for chunks of `chunk_numel` elements (multiples of
// ParameterPack::kAlign). Throws Error unless 0 <= shard < shards.
std::vector<ElementRange> shard_ranges(const std::vector<int64_t>& chunk_numel, int shard, int shards);
std::vector<ElementRange> shard_ranges(const ParameterPack& pack, int shard, int shards);

}  // namespace magellano::optim
