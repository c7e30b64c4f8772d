#include "bpe_word.hpp"

#include <queue>

namespace magellano::data {
namespace {

constexpr uint32_t kNoRank = 0xFFFFFFFFu;
constexpr size_t kHeapThreshold = 48;  // symbols; above this the heap wins

inline uint32_t rank_of(uint64_t v) {
  return v == PairTable::kMissing ? kNoRank : static_cast<uint32_t>(v >> 32);
}

void merge_by_scan(std::vector<uint32_t>& ids, const PairTable& merges) {
  // ranks[i]: rank of (ids[i], ids[i+1]); values[i]: merged id.
  std::vector<uint64_t> values(ids.size() - 1);
  for (size_t i = 0; i + 1 < ids.size(); ++i) values[i] = merges.find(ids[i], ids[i + 1]);
  while (ids.size() > 1) {
    size_t best = 0;
    uint32_t best_rank = kNoRank;
    for (size_t i = 0; i < values.size(); ++i) {
      const uint32_t r = rank_of(values[i]);
      if (r < best_rank) {
        best_rank = r;
        best = i;
      }
    }
    if (best_rank == kNoRank) break;
    ids[best] = static_cast<uint32_t>(values[best]);
    ids.erase(ids.begin() + static_cast<long>(best) + 1);
    values.erase(values.begin() + static_cast<long>(best));
    if (best > 0) values[best - 1] = merges.find(ids[best - 1], ids[best]);
    if (best < values.size()) values[best] = merges.find(ids[best], ids[best + 1]);
  }
}

void merge_by_heap(std::vector<uint32_t>& ids, const PairTable& merges) {
  const size_t n = ids.size();
  constexpr uint32_t kNone = 0xFFFFFFFFu;
  std::vector<uint32_t> next(n), prev(n);
  std::vector<bool> alive(n, true);
  for (size_t i = 0; i < n; ++i) {
    next[i] = i + 1 < n ? static_cast<uint32_t>(i + 1) : kNone;
    prev[i] = i > 0 ? static_cast<uint32_t>(i - 1) : kNone;
  }
  // Entry: (rank, left position, right position); smallest rank, then leftmost, first.
  struct Entry {
    uint32_t rank, left, right;
    bool operator>(const Entry& o) const {
      return rank != o.rank ? rank > o.rank : left > o.left;
    }
  };
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;
  auto push = [&](uint32_t l) {
    if (l == kNone || next[l] == kNone) return;
    const uint32_t r = rank_of(merges.find(ids[l], ids[next[l]]));
    if (r != kNoRank) heap.push({r, l, next[l]});
  };
  for (uint32_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    const Entry e = heap.top();
    heap.pop();
    // Stale unless both ends are still adjacent and still form the pair of that rank (ranks
    // are unique per pair, so an equal rank means an equal pair).
    if (!alive[e.left] || !alive[e.right] || next[e.left] != e.right) continue;
    const uint64_t v = merges.find(ids[e.left], ids[e.right]);
    if (rank_of(v) != e.rank) continue;
    ids[e.left] = static_cast<uint32_t>(v);
    alive[e.right] = false;
    next[e.left] = next[e.right];
    if (next[e.right] != kNone) prev[next[e.right]] = e.left;
    push(prev[e.left]);
    push(e.left);
  }
  size_t out = 0;
  for (size_t i = 0; i < n; ++i)
    if (alive[i]) ids[out++] = ids[i];
  ids.resize(out);
}

}  // namespace

void bpe_merge_word(std::vector<uint32_t>& ids, const PairTable& merges) {
  if (ids.size() < 2) return;
  if (ids.size() <= kHeapThreshold) merge_by_scan(ids, merges);
  else merge_by_heap(ids, merges);
}

}  // namespace magellano::data
