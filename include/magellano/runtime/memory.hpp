// Device memory: one allocator, a tracker of current and peak bytes per category, and the
// reference-counted buffer (Storage) that tensors share.
#pragma once
#include <CL/cl.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace magellano {

class Context;

enum class MemCategory { parameters, gradients, optimizer, activations, scratch };
constexpr int kMemCategories = 5;
const char* to_string(MemCategory c);

class MemoryTracker {
 public:
  void add(MemCategory c, uint64_t bytes);
  void remove(MemCategory c, uint64_t bytes);
  void move(MemCategory from, MemCategory to, uint64_t bytes);
  uint64_t current(MemCategory c) const { return current_[static_cast<int>(c)]; }
  uint64_t peak(MemCategory c) const { return peak_[static_cast<int>(c)]; }
  uint64_t current_total() const { return current_total_; }
  uint64_t peak_total() const { return peak_total_; }
  // Device memory actually held: the capacity of every live buffer plus the buffers the pool
  // keeps for reuse (>= current_total()). What the device sees; the categories above count
  // the bytes tensors asked for.
  void add_reserved(uint64_t bytes);
  void remove_reserved(uint64_t bytes);
  uint64_t current_reserved() const { return current_reserved_; }
  uint64_t peak_reserved() const { return peak_reserved_; }
  void reset_peaks();  // peaks := current values
  nlohmann::json to_json() const;

 private:
  std::array<uint64_t, kMemCategories> current_{}, peak_{};
  uint64_t current_total_ = 0, peak_total_ = 0;
  uint64_t current_reserved_ = 0, peak_reserved_ = 0;
};

// One device buffer of `capacity` bytes of which `bytes` were asked for. When the last tensor
// using it goes away it is untracked and handed back to the context (its pool, or released).
class Storage {
 public:
  Storage(std::shared_ptr<Context> ctx, cl_mem mem, uint64_t bytes, uint64_t capacity,
          MemCategory category);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  cl_mem mem() const { return mem_; }
  uint64_t bytes() const { return bytes_; }
  uint64_t capacity() const { return capacity_; }
  MemCategory category() const { return category_; }
  void set_category(MemCategory c);
  Context& ctx() const { return *ctx_; }
  const std::shared_ptr<Context>& ctx_ptr() const { return ctx_; }

 private:
  std::shared_ptr<Context> ctx_;
  cl_mem mem_;
  uint64_t bytes_, capacity_;
  MemCategory category_;
};

}  // namespace magellano
