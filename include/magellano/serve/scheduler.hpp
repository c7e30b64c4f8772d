// Continuous batching: one decode thread owns the device and one decode state of max_batch rows.
//
//   submit(choices) ──> queue (at most max_queue sequences waiting; more: ApiError 429)
//   decode thread, each iteration:
//     1. admit: every waiting sequence that finds a free row is prefilled into it
//        (Model::prefill of its prompt (1, L) into row r; its last logits into row r of (B, V))
//     2. sample: each live row draws its next id from its own logits row with its own Sampler
//        (batch 1: row r's draw uses counter (0, t) of its own step t, so a sequence draws the
//        same ids whatever row it lands in and whoever shares the batch); the ids go into one
//        (B) i32 device tensor, read back once
//     3. finish: a row that produced an end-of-text id, completed a stop string, reached
//        max_tokens or was cancelled leaves now: DecodeState::end_row frees its keys and values
//        and the row is free for step 1 of the next iteration
//     4. step: Model::step over all B rows (free rows compute on stale ids; nothing reads them)
// A sequence therefore joins at the step after its prefill and never waits for others to
// finish. Prefills run between steps on the same thread (a long prompt delays the others' next
// token by its prefill time).
//
// Exactness: the rows of a step do not mix (each output row of every op depends only on that
// row), so a greedy sequence gets the same ids alone or with others in the batch.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "magellano/generate/generator.hpp"
#include "magellano/generate/sampler.hpp"
#include "magellano/nn/model.hpp"
#include "magellano/serve/metrics.hpp"

namespace magellano::serve {

// One sequence to generate (one choice of a request).
struct SequenceSpec {
  std::vector<int32_t> prompt;  // non-empty, ids < vocab
  generate::SamplingParams sampling;
  int64_t max_tokens = 16;
  std::vector<std::string> stop;    // needs token bytes
  std::optional<int64_t> logprobs;  // top alternatives per token; nullopt = no log-probabilities
};

struct TokenLogprob {
  int32_t id = 0;
  double logprob = 0;                            // log p(id) under the model (before temperature)
  std::vector<std::pair<int32_t, double>> top;   // the most likely ids, most likely first
};

// What the decode thread reports for one choice: new text (final bytes, text_stream.hpp), the ids
// that produced it, their log-probabilities when asked, and the finish reason on the last event.
struct Event {
  size_t choice = 0;
  std::string text;
  std::vector<int32_t> ids;
  std::vector<TokenLogprob> logprobs;
  std::optional<generate::FinishReason> finish;
  std::string error;  // non-empty: the sequence failed (a device error); it is finished
};

// A submitted request as the HTTP thread sees it.
class RequestHandle {
 public:
  // Events that arrived, waiting up to `timeout` for the first one (empty on timeout).
  std::vector<Event> wait(std::chrono::milliseconds timeout);
  // Every choice has finished and wait() returned all of its events.
  bool done() const;
  // The client went away: the decode thread drops the sequences (queued or decoding) at its
  // next iteration and frees their rows.
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }

 private:
  friend class Scheduler;
  void push(Event e);
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Event> events_;
  size_t unfinished_ = 0;  // choices that have not sent their finish event
  std::atomic<bool> cancelled_{false};
  std::chrono::steady_clock::time_point arrival_;
  bool first_token_ = false;
};

class Scheduler {
 public:
  // token_bytes: a token's bytes (empty function: no texts, stop strings refused by the caller).
  // The model and the context must outlive the scheduler; only its decode thread uses them.
  // prompt_as_prefix: a prefix-LM checkpoint; each prompt is prefilled as its bidirectional prefix
  // (as `magellano generate` does), the tokens after it are causal.
  Scheduler(const nn::Model& model, Context& ctx, generate::TokenBytes token_bytes, std::vector<int32_t> eos_ids,
            int64_t max_batch, int64_t max_queue, Metrics& metrics, bool prompt_as_prefix = false);
  ~Scheduler();  // stops the decode thread (sequences still running are dropped)
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues the request's choices. Throws ApiError 429 when they do not fit the queue, 503 after
  // a device failure.
  std::shared_ptr<RequestHandle> submit(std::vector<SequenceSpec> choices);

  int64_t max_batch() const { return max_batch_; }
  std::string failure() const;  // the device error that stopped decoding, or ""

 private:
  struct Waiting {
    std::shared_ptr<RequestHandle> request;
    size_t choice;
    SequenceSpec spec;
  };
  struct Row;  // a live sequence (scheduler.cpp)
  void loop();
  void admit(Waiting w, int64_t row);
  void sample_and_finish();
  void finish(int64_t row, std::optional<generate::FinishReason> why, Event ev);

  const nn::Model& model_;
  Context& ctx_;
  generate::TokenBytes token_bytes_;
  std::vector<int32_t> eos_ids_;
  int64_t max_batch_, max_queue_, vocab_;
  Metrics& metrics_;
  bool prompt_as_prefix_;
  // Decode thread only:
  nn::DecodeState state_;
  Tensor logits_;  // (B, V) f32: each live row's next-token logits
  Tensor ids_;     // (B) i32: each row's last sampled id
  std::vector<std::unique_ptr<Row>> rows_;  // null = free
  // Shared, under mutex_:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Waiting> queue_;
  int64_t live_ = 0;
  bool stopping_ = false;
  std::string failure_;
  std::thread thread_;  // last: starts once everything above exists
};

}  // namespace magellano::serve
