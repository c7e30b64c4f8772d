// PairTable: open-addressing hash map from a token pair (left id, right id) to a 64-bit value
// (for merges: rank << 32 | merged id). Insert-only, sized once; lookups are the BPE hot path.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace magellano::data {

class PairTable {
 public:
  static constexpr uint64_t kMissing = ~0ull;

  explicit PairTable(size_t expected = 0) { reserve(expected); }

  void reserve(size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2 + 1) cap <<= 1;
    keys_.assign(cap, kEmpty);
    values_.assign(cap, 0);
    mask_ = cap - 1;
    size_ = 0;
  }

  void insert(uint32_t left, uint32_t right, uint64_t value) {
    const uint64_t key = pack(left, right);
    size_t i = slot(key);
    while (keys_[i] != kEmpty && keys_[i] != key) i = (i + 1) & mask_;
    if (keys_[i] == kEmpty) ++size_;
    keys_[i] = key;
    values_[i] = value;
  }

  // The value stored for (left, right), or kMissing.
  uint64_t find(uint32_t left, uint32_t right) const {
    const uint64_t key = pack(left, right);
    for (size_t i = slot(key);; i = (i + 1) & mask_) {
      if (keys_[i] == key) return values_[i];
      if (keys_[i] == kEmpty) return kMissing;
    }
  }

  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmpty = ~0ull;
  static uint64_t pack(uint32_t a, uint32_t b) { return (uint64_t{a} << 32) | b; }
  size_t slot(uint64_t key) const {
    return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> 40) & mask_;
  }

  std::vector<uint64_t> keys_, values_;
  size_t mask_ = 0, size_ = 0;
};

}  // namespace magellano::data
