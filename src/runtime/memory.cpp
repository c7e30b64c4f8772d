#include "magellano/runtime/memory.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "magellano/runtime/context.hpp"

namespace magellano {

const char* to_string(MemCategory c) {
  switch (c) {
    case MemCategory::parameters: return "parameters";
    case MemCategory::gradients: return "gradients";
    case MemCategory::optimizer: return "optimizer";
    case MemCategory::activations: return "activations";
    case MemCategory::scratch: return "scratch";
  }
  return "?";
}

void MemoryTracker::add(MemCategory c, uint64_t bytes) {
  int i = static_cast<int>(c);
  current_[i] += bytes;
  peak_[i] = std::max(peak_[i], current_[i]);
  current_total_ += bytes;
  peak_total_ = std::max(peak_total_, current_total_);
}

void MemoryTracker::remove(MemCategory c, uint64_t bytes) {
  current_[static_cast<int>(c)] -= bytes;
  current_total_ -= bytes;
}

void MemoryTracker::move(MemCategory from, MemCategory to, uint64_t bytes) {
  current_[static_cast<int>(from)] -= bytes;
  int i = static_cast<int>(to);
  current_[i] += bytes;
  peak_[i] = std::max(peak_[i], current_[i]);
}

void MemoryTracker::add_reserved(uint64_t bytes) {
  current_reserved_ += bytes;
  peak_reserved_ = std::max(peak_reserved_, current_reserved_);
}

void MemoryTracker::remove_reserved(uint64_t bytes) { current_reserved_ -= bytes; }

void MemoryTracker::reset_peaks() {
  peak_ = current_;
  peak_total_ = current_total_;
  peak_reserved_ = current_reserved_;
}

nlohmann::json MemoryTracker::to_json() const {
  nlohmann::json j;
  for (int i = 0; i < kMemCategories; ++i)
    j[to_string(static_cast<MemCategory>(i))] = {{"current_bytes", current_[i]},
                                                 {"peak_bytes", peak_[i]}};
  j["total"] = {{"current_bytes", current_total_}, {"peak_bytes", peak_total_}};
  j["reserved"] = {{"current_bytes", current_reserved_}, {"peak_bytes", peak_reserved_}};
  return j;
}

Storage::Storage(std::shared_ptr<Context> ctx, cl_mem mem, uint64_t bytes, uint64_t capacity,
                 MemCategory category)
    : ctx_(std::move(ctx)), mem_(mem), bytes_(bytes), capacity_(capacity), category_(category) {
  ctx_->memory().add(category_, bytes_);
}

Storage::~Storage() {
  ctx_->memory().remove(category_, bytes_);
  ctx_->release_buffer(mem_, capacity_);
}

void Storage::set_category(MemCategory c) {
  if (c == category_) return;
  ctx_->memory().move(category_, c, bytes_);
  category_ = c;
}

}  // namespace magellano
