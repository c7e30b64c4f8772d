// ZeRO stage 1's split of a pack among ranks (optim/shard.hpp): every element owned by exactly
// one shard, shards in order within each chunk, every range starting on an int8 block (256 from
// its chunk's start) and holding whole step-kernel vectors (16), shares within a block of T / N
// (plus a chunk's tail), and bad shard numbers refused. Checked exhaustively over layouts with
// odd chunk counts and sizes (multiples of 64, as packs make them) and 1..9 shards.
#include <gtest/gtest.h>

#include <numeric>

#include "magellano/optim/shard.hpp"
#include "magellano/runtime/error.hpp"

namespace optim = magellano::optim;

namespace {

void check_split(const std::vector<int64_t>& numel, int shards) {
  const int64_t total = std::accumulate(numel.begin(), numel.end(), int64_t{0});
  std::vector<std::vector<optim::ElementRange>> all;
  for (int s = 0; s < shards; ++s) all.push_back(optim::shard_ranges(numel, s, shards));
  int64_t largest = 0;
  for (int s = 0; s < shards; ++s) {
    ASSERT_EQ(all[size_t(s)].size(), numel.size());
    int64_t share = 0;
    for (const auto& r : all[size_t(s)]) share += r.size();
    largest = std::max(largest, share);
  }
  // Balanced: no share exceeds ceil(T / N) by more than one block per cut it may move (2 cuts)
  // plus the rounding at a chunk's end (at most 192 of its 64-multiples past a block).
  EXPECT_LE(largest, (total + shards - 1) / shards + 2 * 256) << "shards " << shards;
  for (size_t k = 0; k < numel.size(); ++k) {
    int64_t at = 0;  // shards cover chunk k in order, without gaps or overlaps
    for (int s = 0; s < shards; ++s) {
      const optim::ElementRange r = all[size_t(s)][k];
      ASSERT_GE(r.size(), 0);
      if (r.size() == 0) continue;
      EXPECT_EQ(r.begin, at) << "chunk " << k << " shard " << s;
      EXPECT_EQ(r.begin % 256, 0) << "chunk " << k << " shard " << s;
      EXPECT_TRUE(r.end == numel[k] || r.end % 256 == 0) << "chunk " << k << " shard " << s;
      EXPECT_EQ(r.size() % 16, 0);
      at = r.end;
    }
    EXPECT_EQ(at, numel[k]) << "chunk " << k << " of " << shards << " shards";
  }
}

}  // namespace

TEST(ShardRanges, EveryElementOwnedOnceOnBlockBoundaries) {
  const std::vector<std::vector<int64_t>> layouts = {
      {64}, {320}, {4096}, {4096, 4096, 1344}, {64, 64, 64}, {1000 * 64, 64, 77 * 64, 4096 * 3}, {256 * 9 + 64}};
  for (const auto& l : layouts)
    for (int shards = 1; shards <= 9; ++shards) check_split(l, shards);
}

TEST(ShardRanges, OneShardIsTheWholePackAndTwoCutTheMiddle) {
  const auto one = optim::shard_ranges({4096, 1344}, 0, 1);
  EXPECT_EQ(one, (std::vector<optim::ElementRange>{{0, 4096}, {0, 1344}}));
  // T = 5440, the cut at 2720 moves up to 2816 (11 blocks) in chunk 0.
  EXPECT_EQ(optim::shard_ranges({4096, 1344}, 0, 2), (std::vector<optim::ElementRange>{{0, 2816}, {0, 0}}));
  EXPECT_EQ(optim::shard_ranges({4096, 1344}, 1, 2), (std::vector<optim::ElementRange>{{2816, 4096}, {0, 1344}}));
  // A pack smaller than a block: shard 0 owns it all, the others nothing.
  EXPECT_EQ(optim::shard_ranges({64}, 0, 3)[0], (optim::ElementRange{0, 64}));
  EXPECT_EQ(optim::shard_ranges({64}, 2, 3)[0].size(), 0);
}

TEST(ShardRanges, BadShardNumbersAreRefused) {
  EXPECT_THROW(optim::shard_ranges({64}, 1, 1), magellano::Error);
  EXPECT_THROW(optim::shard_ranges({64}, -1, 2), magellano::Error);
  EXPECT_THROW(optim::shard_ranges({64}, 0, 0), magellano::Error);
}
