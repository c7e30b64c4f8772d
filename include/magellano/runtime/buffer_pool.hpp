// A cache of released device buffers, so that a training step (which allocates the same sizes
// every step) does not call clCreateBuffer / clReleaseMemObject for every op output.
//
// Requests are rounded up to a size class (at most 12.5% larger; see capacity_for) so that
// sizes that vary a little from step to step (the MoE's per-expert token counts) still hit.
// A released buffer is cached under its capacity and handed out again for the same class.
// Safe with one in-order queue: work enqueued before the release runs before any later user.
#pragma once
#include <CL/cl.h>

#include <cstdint>
#include <map>
#include <mutex>

namespace magellano {

class BufferPool {
 public:
  BufferPool() = default;
  ~BufferPool() { release_all(); }
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // The size class of a request: bytes rounded up to a multiple of max(256, 2^floor(log2(bytes))/8).
  static uint64_t capacity_for(uint64_t bytes);

  // A cached buffer of exactly `capacity` bytes (removed from the cache), or nullptr.
  cl_mem take(uint64_t capacity);
  // Caches `mem` (of `capacity` bytes) for reuse; the pool owns it from now on.
  void give(cl_mem mem, uint64_t capacity);
  // Releases every cached buffer (before an allocation that would not fit otherwise).
  void release_all();

  uint64_t cached_bytes() const;
  uint64_t hits() const { return hits_; }
  uint64_t misses() const { return misses_; }

 private:
  mutable std::mutex mutex_;
  std::multimap<uint64_t, cl_mem> free_;
  uint64_t cached_ = 0, hits_ = 0, misses_ = 0;
};

}  // namespace magellano
