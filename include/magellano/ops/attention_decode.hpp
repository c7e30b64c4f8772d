// Attention decoding against a paged KV cache on the device (cached generation, continuous
// batching). No autograd.
//
// The cache is a pool of fixed-size blocks shared by all rows of a batch:
//   k_pool, v_pool: (num_blocks, block_size, nKV, d) f32
//   block_table:    (B, max_blocks_per_row) i32: row b's position p lives in block
//                   block_table[b, p / block_size], slot p % block_size (entries a row does not
//                   use may hold anything, e.g. -1)
//   positions / lengths: (B) i32
// Which blocks a row owns, and when they are freed, is the caller's business (src/generate).
#pragma once
#include <cstdint>

#include "magellano/tensor/tensor.hpp"

namespace magellano::ops {

// Writes k, v: (B, T, nKV, d) at positions positions[b] .. positions[b] + T - 1 of row b (T = 1 for
// a decoding step, T = L for a prefill). A position whose block lies past the table's width, or
// whose table entry is outside [0, num_blocks), is skipped (the caller sizes the table).
void kv_cache_write(const Tensor& k_pool, const Tensor& v_pool, const Tensor& k, const Tensor& v,
                    const Tensor& block_table, const Tensor& positions);

struct AttentionDecodeOptions {
  float scale = 0.0f;  // 0: 1/sqrt(d)
  // Positions per work-group (split-K over the sequence; the partial results are combined in a
  // fixed order by a second kernel). 0: the device's default (GPUs 256; CPUs one split per row).
  int64_t split = 0;
  // An upper bound on lengths[b] known to the host (e.g. the generator's longest row); 0: the
  // table's capacity (max_blocks_per_row · block_size). Only sizes the launch: work-groups past
  // a row's length return at once, so the cost per row grows with its own length.
  int64_t max_length = 0;
};

// q: (B, nH, d), one new token per row, attending to the first lengths[b] cached positions of row
// b (the current token already written, so lengths[b] counts it); query head j reads kv head
// j / (nH / nKV). Returns (B, nH, d); a row with length 0 gives zeros.
Tensor attention_decode(const Tensor& q, const Tensor& k_pool, const Tensor& v_pool, const Tensor& block_table,
                        const Tensor& lengths, const AttentionDecodeOptions& options = {});

}  // namespace magellano::ops
