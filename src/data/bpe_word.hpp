// Applying rank-ordered BPE merges to one pre-token.
#pragma once
#include <cstdint>
#include <vector>

#include "pair_table.hpp"

namespace magellano::data {

// ids: (n) token ids of one pre-token, initially one per byte; merged in place. Repeatedly
// merges the adjacent pair of lowest rank (the leftmost one on ties) until no adjacent pair is
// a merge. merges maps (left, right) -> rank << 32 | merged id.
// Short words use the quadratic rank scan; long ones a heap over a linked list (O(n log n)).
void bpe_merge_word(std::vector<uint32_t>& ids, const PairTable& merges);

}  // namespace magellano::data
