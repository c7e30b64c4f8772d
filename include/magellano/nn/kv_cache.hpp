// The keys and values that the attention blocks keep for decoding: a paged cache on the device.
//
// Every attention block owns a pool pair, k and v: (num_blocks, block_size, nKV, d) f32. A row
// (one sequence of the batch) owns a list of pool blocks, the same list in every block's pools,
// so one block table serves the whole model:
//   block_table (B, max_blocks) i32: row b's position t lives in block block_table[b][t / block_size]
//   at slot t % block_size
// Blocks come from a free list and are taken as a row grows (preallocated in blocks of
// block_size positions, never per token); when the free list is empty every pool doubles (the old
// contents copied). release(b) gives a row's blocks back at once and ends the row: writes skip it
// and its attention reads nothing (a zero output) until the cache is dropped.
//
// A step goes: begin_step() (reserves one more position per live row, uploads the table if it
// changed and the positions) → every attention block writes its k/v at positions() and attends
// over lengths_after() positions → end_step(). A prefill (the parallel forward over a prompt)
// goes begin_prefill(rows, L) → writes at positions 0..L-1 → end_prefill(rows, L).
#pragma once
#include <cstdint>
#include <vector>

#include "magellano/tensor/tensor.hpp"

namespace magellano::nn {

// One attention block's pools; both undefined for other blocks.
struct KvPools {
  Tensor k, v;  // (num_blocks, block_size, nKV, d)
};

class KvCache {
 public:
  static constexpr int64_t kDefaultBlockSize = 32;
  KvCache() = default;
  // heads[i] = {nKV, d} of block i, {0, 0} for a block without attention. Starts with enough
  // blocks for `batch` rows of one block each.
  KvCache(Context& ctx, int64_t batch, const std::vector<std::pair<int64_t, int64_t>>& heads,
          int64_t block_size = kDefaultBlockSize);
  bool empty() const { return rows_.empty(); }
  int64_t batch() const { return static_cast<int64_t>(rows_.size()); }
  int64_t block_size() const { return block_size_; }
  int64_t num_blocks() const { return num_blocks_; }
  int64_t length(int64_t row) const { return rows_.at(row).length; }
  const KvPools& pools(size_t block) const { return pools_.at(block); }

  // Rows [row, row + count) about to receive positions [0, L) from a parallel forward: they must
  // be empty and live. Returns nothing; table(row, count) and positions(row, count) then describe them.
  void begin_prefill(int64_t row, int64_t count, int64_t length);
  void end_prefill(int64_t row, int64_t count, int64_t length);
  // One more position for every live row.
  void begin_step();
  void end_step();
  // The device views of the current operation: the block table (count, max_blocks) i32, the
  // position each row writes at (count) i32 (-1: an ended row, skipped), and the row lengths
  // once the write is done (count) i32 (0 for an ended row).
  Tensor table(int64_t row, int64_t count) const { return table_dev_.narrow_rows(row, row + count); }
  Tensor positions(int64_t row, int64_t count) const { return positions_dev_.narrow_rows(row, row + count); }
  Tensor lengths_after(int64_t row, int64_t count) const { return lengths_dev_.narrow_rows(row, row + count); }
  // The longest row once the current write is done (sizes the decode launch).
  int64_t max_length_after() const { return max_after_; }
  // Gives row b's blocks back and ends it.
  void release(int64_t row);
  // Makes a released row live and empty again, ready for a prefill (a server reusing the row).
  void reopen(int64_t row);
  bool live(int64_t row) const { return rows_.at(row).live; }

 private:
  struct Row {
    std::vector<int32_t> blocks;
    int64_t length = 0;
    bool live = true;
  };
  void reserve(Row& r, int64_t length);  // blocks for positions [0, length)
  void grow();                            // doubles every pool
  void upload(int64_t row, int64_t count, int64_t write_len);
  Context* ctx_ = nullptr;
  int64_t block_size_ = kDefaultBlockSize, num_blocks_ = 0;
  std::vector<std::pair<int64_t, int64_t>> heads_;
  std::vector<KvPools> pools_;
  std::vector<int32_t> free_;  // free block indices, taken from the back
  std::vector<Row> rows_;
  int64_t table_cols_ = 0;     // max_blocks of the uploaded table
  bool table_dirty_ = true;
  int64_t max_after_ = 0;
  Tensor table_dev_, positions_dev_, lengths_dev_;
};

}  // namespace magellano::nn
