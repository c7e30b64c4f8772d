#include "magellano/serve/metrics.hpp"

#include <sstream>

namespace magellano::serve {

namespace {
constexpr double kWindowSeconds = 5.0;
}

void Metrics::count_request(const std::string& endpoint, int status) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[{endpoint, status}];
}

void Metrics::record_step(int64_t rows, int64_t tokens) {
  ++steps_;
  batch_rows_ += rows;
  generated_tokens_ += tokens;
  std::lock_guard<std::mutex> lock(mutex_);
  const auto now = Clock::now();
  recent_.emplace_back(now, tokens);
  while (!recent_.empty() && std::chrono::duration<double>(now - recent_.front().first).count() > kWindowSeconds)
    recent_.pop_front();
}

void Metrics::record_first_token(double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (size_t i = 0; i < kTtftBuckets.size(); ++i)
    if (seconds <= kTtftBuckets[i]) {
      ++ttft_counts_[i];
      break;
    }
  ++ttft_count_;
  ttft_sum_ += seconds;
}

void Metrics::set_device_memory(uint64_t in_use, uint64_t reserved, uint64_t peak_reserved) {
  mem_in_use_ = in_use;
  mem_reserved_ = reserved;
  mem_peak_ = peak_reserved;
}

std::string Metrics::render() const {
  std::ostringstream o;
  auto metric = [&](const char* name, const char* type, const char* help) {
    o << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
  };
  std::lock_guard<std::mutex> lock(mutex_);
  metric("magellano_requests_total", "counter", "HTTP requests answered, by endpoint and status.");
  for (const auto& [key, n] : requests_)
    o << "magellano_requests_total{endpoint=\"" << key.first << "\",status=\"" << key.second << "\"} " << n << "\n";
  metric("magellano_queue_depth", "gauge", "Requests waiting for a free row.");
  o << "magellano_queue_depth " << queue_depth_ << "\n";
  metric("magellano_batch_size", "gauge", "Rows decoding now.");
  o << "magellano_batch_size " << batch_size_ << "\n";
  metric("magellano_max_batch", "gauge", "Rows of the decode state (--max-batch).");
  o << "magellano_max_batch " << max_batch_ << "\n";
  metric("magellano_decode_steps_total", "counter", "Batched decode steps.");
  o << "magellano_decode_steps_total " << steps_ << "\n";
  metric("magellano_batch_rows_total", "counter", "Rows summed over decode steps (divide by steps: mean batch size).");
  o << "magellano_batch_rows_total " << batch_rows_ << "\n";
  metric("magellano_prompt_tokens_total", "counter", "Prompt tokens prefilled.");
  o << "magellano_prompt_tokens_total " << prompt_tokens_ << "\n";
  metric("magellano_generated_tokens_total", "counter", "Tokens generated.");
  o << "magellano_generated_tokens_total " << generated_tokens_ << "\n";
  int64_t window_tokens = 0;
  const auto now = Clock::now();
  for (const auto& [t, n] : recent_)
    if (std::chrono::duration<double>(now - t).count() <= kWindowSeconds) window_tokens += n;
  metric("magellano_tokens_per_second", "gauge", "Generated tokens per second over the last 5 s.");
  o << "magellano_tokens_per_second " << static_cast<double>(window_tokens) / kWindowSeconds << "\n";
  metric("magellano_time_to_first_token_seconds", "histogram", "From a request's arrival to its first sampled token.");
  int64_t cumulative = 0;
  for (size_t i = 0; i < kTtftBuckets.size(); ++i) {
    cumulative += ttft_counts_[i];
    o << "magellano_time_to_first_token_seconds_bucket{le=\"" << kTtftBuckets[i] << "\"} " << cumulative << "\n";
  }
  o << "magellano_time_to_first_token_seconds_bucket{le=\"+Inf\"} " << ttft_count_ << "\n"
    << "magellano_time_to_first_token_seconds_sum " << ttft_sum_ << "\n"
    << "magellano_time_to_first_token_seconds_count " << ttft_count_ << "\n";
  metric("magellano_device_memory_bytes", "gauge",
         "Device memory: in_use (tensors), reserved (buffers held, pool included), peak_reserved.");
  o << "magellano_device_memory_bytes{kind=\"in_use\"} " << mem_in_use_ << "\n"
    << "magellano_device_memory_bytes{kind=\"reserved\"} " << mem_reserved_ << "\n"
    << "magellano_device_memory_bytes{kind=\"peak_reserved\"} " << mem_peak_ << "\n";
  return o.str();
}

}  // namespace magellano::serve
