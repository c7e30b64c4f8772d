// The server's counters and gauges, read by GET /metrics in the Prometheus text format (0.0.4):
//   magellano_requests_total{endpoint,status}   counter   every answered HTTP request
//   magellano_queue_depth                       gauge     requests waiting for a row
//   magellano_batch_size                        gauge     rows decoding now (after the last step's finishes)
//   magellano_max_batch                         gauge     rows of the decode state
//   magellano_decode_steps_total                counter   batched decode steps
//   magellano_batch_rows_total                  counter   Σ rows over those steps (÷ steps = mean batch)
//   magellano_prompt_tokens_total / magellano_generated_tokens_total   counters
//   magellano_tokens_per_second                 gauge     generated tokens per second over the last ~5 s
//   magellano_time_to_first_token_seconds       histogram request arrival → first token sampled
//   magellano_device_memory_bytes{kind}         gauge     in_use (tensors), reserved (buffers held), peak_reserved
// Written from the HTTP threads and the decode thread, read from any: atomics and one mutex.
#pragma once
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>

namespace magellano::serve {

class Metrics {
 public:
  void count_request(const std::string& endpoint, int status);
  void set_queue_depth(int64_t n) { queue_depth_ = n; }
  void set_max_batch(int64_t n) { max_batch_ = n; }
  // One decode step of `rows` rows that produced `tokens` tokens.
  void record_step(int64_t rows, int64_t tokens);
  void set_batch_size(int64_t rows) { batch_size_ = rows; }
  void add_prompt_tokens(int64_t n) { prompt_tokens_ += n; }
  void record_first_token(double seconds);
  void set_device_memory(uint64_t in_use, uint64_t reserved, uint64_t peak_reserved);
  // The text GET /metrics answers with.
  std::string render() const;

  int64_t queue_depth() const { return queue_depth_; }
  int64_t batch_size() const { return batch_size_; }

 private:
  using Clock = std::chrono::steady_clock;
  static constexpr std::array<double, 12> kTtftBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                           0.5,   1.0,  2.5,   5.0,  10.0, 30.0};
  std::atomic<int64_t> queue_depth_{0}, batch_size_{0}, max_batch_{0}, steps_{0}, batch_rows_{0};
  std::atomic<int64_t> prompt_tokens_{0}, generated_tokens_{0};
  std::atomic<uint64_t> mem_in_use_{0}, mem_reserved_{0}, mem_peak_{0};
  mutable std::mutex mutex_;  // the members below
  std::map<std::pair<std::string, int>, int64_t> requests_;
  std::array<int64_t, kTtftBuckets.size()> ttft_counts_{};  // per bucket (not cumulative)
  int64_t ttft_count_ = 0;
  double ttft_sum_ = 0;
  mutable std::deque<std::pair<Clock::time_point, int64_t>> recent_;  // (step time, tokens) of the last ~5 s
};

}  // namespace magellano::serve
