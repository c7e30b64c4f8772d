#include "magellano/runtime/buffer_pool.hpp"

#include <algorithm>
#include <bit>

namespace magellano {

uint64_t BufferPool::capacity_for(uint64_t bytes) {
  if (bytes <= 256) return 256;
  const uint64_t granule = std::max<uint64_t>(256, std::bit_floor(bytes) / 8);
  return (bytes + granule - 1) / granule * granule;
}

cl_mem BufferPool::take(uint64_t capacity) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = free_.find(capacity);
  if (it == free_.end()) {
    ++misses_;
    return nullptr;
  }
  ++hits_;
  cl_mem mem = it->second;
  free_.erase(it);
  cached_ -= capacity;
  return mem;
}

void BufferPool::give(cl_mem mem, uint64_t capacity) {
  std::lock_guard<std::mutex> lock(mutex_);
  free_.emplace(capacity, mem);
  cached_ += capacity;
}

void BufferPool::release_all() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& [capacity, mem] : free_) clReleaseMemObject(mem);
  free_.clear();
  cached_ = 0;
}

uint64_t BufferPool::cached_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return cached_;
}

}  // namespace magellano
