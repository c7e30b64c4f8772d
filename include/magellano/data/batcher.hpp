// Batcher: deterministic training batches from a memory-mapped token file.
//
// Sampling scheme (shuffled non-overlapping windows, per epoch):
//   the N tokens hold W = floor((N - 1) / L) windows; window k is tokens [k*L, k*L + L + 1)
//   (neighbours share one token, so every token but the first is a target exactly once);
//   epoch e visits all W windows once, in a permutation drawn from (seed, e) by Fisher-Yates
//   over a splitmix64 stream (bit-exact on every platform; std::shuffle is not);
//   a batch is the next B windows of that order, rolling over into epoch e + 1 when it runs out.
// A batch is (B, L + 1) int32, row-major: row b is one window; inputs are columns [0, L),
// targets columns [1, L + 1).
// State (seed, epoch, position within the epoch) is all there is: restoring it resumes the
// exact same sequence of batches.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <span>
#include <vector>

#include "magellano/data/token_file.hpp"

namespace magellano::data {

struct BatcherState {
  uint64_t seed = 0;
  uint64_t epoch = 0;     // epochs completed
  uint64_t position = 0;  // windows already drawn in the current epoch (<= windows per epoch)
  bool operator==(const BatcherState&) const = default;
};

nlohmann::json to_json(const BatcherState& s);
// Throws magellano::Error for a malformed object ("batcher state needs an unsigned integer
// \"seed\", got none"; the caller names the file).
BatcherState batcher_state_from_json(const nlohmann::json& j);

class Batcher {
 public:
  // Throws magellano::Error if the file has fewer than seq_len + 1 tokens, or batch/seq_len is 0.
  Batcher(TokenFile file, size_t batch, size_t seq_len, uint64_t seed);

  size_t batch() const { return batch_; }
  size_t seq_len() const { return seq_len_; }
  uint64_t windows_per_epoch() const { return windows_; }
  const TokenFile& file() const { return file_; }

  // Fills out (batch * (seq_len + 1) values) with the next batch.
  void next(std::span<int32_t> out);
  std::vector<int32_t> next();

  BatcherState state() const { return state_; }
  // Windows drawn so far over all epochs (epoch · windows + position): row b of the next batch is
  // draw draws() + b (data/objective.hpp keys its per-row draws on it).
  uint64_t draws() const { return state_.epoch * windows_ + state_.position; }
  // Resumes from a saved state; throws magellano::Error if it does not fit this file.
  void restore(const BatcherState& s);
  // Epochs done, fractional (e.g. 2.25 = a quarter into the third epoch).
  double epochs() const;

 private:
  void shuffle_epoch();

  TokenFile file_;
  size_t batch_, seq_len_;
  uint64_t windows_;
  BatcherState state_;
  std::vector<uint32_t> order_;  // (W) window indices of the current epoch
};

}  // namespace magellano::data
