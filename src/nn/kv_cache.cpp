#include "magellano/nn/kv_cache.hpp"

#include <algorithm>

#include "magellano/ops/elementwise.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::nn {

KvCache::KvCache(Context& ctx, int64_t batch, const std::vector<std::pair<int64_t, int64_t>>& heads,
                 int64_t block_size)
    : ctx_(&ctx), block_size_(block_size), heads_(heads), pools_(heads.size()), rows_(batch) {
  if (batch < 1 || block_size < 1) throw Error("kv cache: batch and block size must be positive.");
  positions_dev_ = Tensor::empty(ctx, Shape{batch}, DType::i32);
  lengths_dev_ = Tensor::empty(ctx, Shape{batch}, DType::i32);
  grow();  // from 0 to `batch` blocks
}

void KvCache::grow() {
  const int64_t old = num_blocks_;
  const int64_t grown = std::max<int64_t>(2 * old, batch());
  for (size_t i = 0; i < heads_.size(); ++i) {
    const auto [kv_heads, d] = heads_[i];
    if (kv_heads == 0) continue;
    KvPools p{Tensor::zeros(*ctx_, Shape{grown, block_size_, kv_heads, d}),
              Tensor::zeros(*ctx_, Shape{grown, block_size_, kv_heads, d})};
    if (old > 0) {
      ops::copy_into(pools_[i].k, p.k.narrow_rows(0, old));
      ops::copy_into(pools_[i].v, p.v.narrow_rows(0, old));
    }
    pools_[i] = std::move(p);
  }
  for (int64_t b = grown - 1; b >= old; --b) free_.push_back(static_cast<int32_t>(b));  // lowest first out
  num_blocks_ = grown;
}

void KvCache::reserve(Row& r, int64_t length) {
  while (static_cast<int64_t>(r.blocks.size()) * block_size_ < length) {
    if (free_.empty()) grow();
    r.blocks.push_back(free_.back());
    free_.pop_back();
    table_dirty_ = true;
  }
}

// Uploads the block table when it changed, and the positions / lengths of rows
// [row, row + count) for a write of write_len positions (the other rows: -1 / their length).
void KvCache::upload(int64_t row, int64_t count, int64_t write_len) {
  const int64_t B = batch();
  if (table_dirty_) {
    int64_t cols = 1;
    for (const Row& r : rows_) cols = std::max<int64_t>(cols, static_cast<int64_t>(r.blocks.size()));
    std::vector<int32_t> t(B * cols, -1);
    for (int64_t b = 0; b < B; ++b) std::copy(rows_[b].blocks.begin(), rows_[b].blocks.end(), t.begin() + b * cols);
    table_dev_ = Tensor::from_host_i32(*ctx_, Shape{B, cols}, t);
    table_cols_ = cols;
    table_dirty_ = false;
  }
  std::vector<int32_t> pos(B, -1), len(B, 0);
  for (int64_t b = 0; b < B; ++b) {
    const Row& r = rows_[b];
    if (!r.live) continue;
    const bool writes = b >= row && b < row + count;
    pos[b] = writes ? static_cast<int32_t>(r.length) : -1;
    len[b] = static_cast<int32_t>(r.length + (writes ? write_len : 0));
  }
  max_after_ = *std::max_element(len.begin(), len.end());
  positions_dev_.copy_from_host(pos.data(), pos.size() * sizeof(int32_t));  // the buffers of the constructor:
  lengths_dev_.copy_from_host(len.data(), len.size() * sizeof(int32_t));    // no allocation per step
}

void KvCache::begin_prefill(int64_t row, int64_t count, int64_t length) {
  if (row < 0 || count < 1 || row + count > batch()) throw Error("kv cache: prefill rows outside the batch.");
  for (int64_t b = row; b < row + count; ++b) {
    if (!rows_[b].live || rows_[b].length != 0)
      throw Error("kv cache: a prefill needs empty rows (row " + std::to_string(b) + " holds positions).");
    reserve(rows_[b], length);
  }
  upload(row, count, length);
}

void KvCache::end_prefill(int64_t row, int64_t count, int64_t length) {
  for (int64_t b = row; b < row + count; ++b) rows_[b].length = length;
}

void KvCache::begin_step() {
  for (Row& r : rows_)
    if (r.live) reserve(r, r.length + 1);
  upload(0, batch(), 1);
}

void KvCache::end_step() {
  for (Row& r : rows_)
    if (r.live) ++r.length;
}

void KvCache::release(int64_t row) {
  Row& r = rows_.at(row);
  free_.insert(free_.end(), r.blocks.rbegin(), r.blocks.rend());
  r.blocks.clear();
  r.length = 0;
  r.live = false;
  table_dirty_ = true;
}

void KvCache::reopen(int64_t row) {
  Row& r = rows_.at(row);
  if (r.live) throw Error("kv cache: row " + std::to_string(row) + " is live; release it before reopening it.");
  r.live = true;  // release() left it without blocks, at length 0
  table_dirty_ = true;
}

}  // namespace magellano::nn
