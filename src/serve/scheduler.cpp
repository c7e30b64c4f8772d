#include "magellano/serve/scheduler.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "magellano/autograd/tape.hpp"
#include "magellano/generate/text_stream.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/runtime/error.hpp"
#include "magellano/serve/api_error.hpp"

namespace magellano::serve {

using Clock = std::chrono::steady_clock;

// ---- RequestHandle ---------------------------------------------------------------------------

std::vector<Event> RequestHandle::wait(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait_for(lock, timeout, [&] { return !events_.empty(); });
  std::vector<Event> out(std::make_move_iterator(events_.begin()), std::make_move_iterator(events_.end()));
  events_.clear();
  return out;
}

bool RequestHandle::done() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return unfinished_ == 0 && events_.empty();
}

void RequestHandle::push(Event e) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (e.finish || !e.error.empty()) --unfinished_;
    events_.push_back(std::move(e));
  }
  cv_.notify_all();
}

// ---- Scheduler -------------------------------------------------------------------------------

struct Scheduler::Row {
  std::shared_ptr<RequestHandle> request;
  size_t choice = 0;
  SequenceSpec spec;
  generate::Sampler sampler;
  generate::TextStream stream;
  int64_t step = 0;  // ids generated so far
  Row(Context& ctx, int64_t vocab, Waiting w)
      : request(std::move(w.request)), choice(w.choice), spec(std::move(w.spec)),
        sampler(ctx, 1, vocab, spec.sampling, {spec.prompt}), stream(spec.stop) {}
};

namespace {

// log-softmax of one row of logits (float64), the chosen id's value and the `top` most likely ids.
TokenLogprob logprob_of(const std::vector<float>& logits, int32_t id, int64_t top) {
  const double mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float x : logits) sum += std::exp(static_cast<double>(x) - mx);
  const double log_z = mx + std::log(sum);
  TokenLogprob t;
  t.id = id;
  t.logprob = logits[id] - log_z;
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  const size_t k = std::min<size_t>(static_cast<size_t>(top), order.size());
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  for (size_t i = 0; i < k; ++i) t.top.emplace_back(order[i], logits[order[i]] - log_z);
  return t;
}

}  // namespace

Scheduler::Scheduler(const nn::Model& model, Context& ctx, generate::TokenBytes token_bytes,
                     std::vector<int32_t> eos_ids, int64_t max_batch, int64_t max_queue, Metrics& metrics,
                     bool prompt_as_prefix)
    : model_(model), ctx_(ctx), token_bytes_(std::move(token_bytes)), eos_ids_(std::move(eos_ids)),
      max_batch_(max_batch), max_queue_(max_queue), vocab_(model.spec().vocab_size), metrics_(metrics),
      prompt_as_prefix_(prompt_as_prefix) {
  if (max_batch < 1 || max_queue < 0) throw Error("serve: --max-batch must be >= 1 and --max-queue >= 0.");
  state_ = model_.empty_state(max_batch_);
  for (int64_t b = 0; b < max_batch_; ++b) state_.end_row(b);  // every row starts free
  logits_ = Tensor::empty(ctx_, Shape{max_batch_, vocab_});
  ids_ = Tensor::from_host_i32(ctx_, Shape{max_batch_}, std::vector<int32_t>(max_batch_, 0));
  rows_.resize(static_cast<size_t>(max_batch_));
  metrics_.set_max_batch(max_batch_);
  const auto& mem = ctx_.memory();
  metrics_.set_device_memory(mem.current_total(), mem.current_reserved(), mem.peak_reserved());
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::string Scheduler::failure() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return failure_;
}

std::shared_ptr<RequestHandle> Scheduler::submit(std::vector<SequenceSpec> choices) {
  auto request = std::make_shared<RequestHandle>();
  request->arrival_ = Clock::now();
  request->unfinished_ = choices.size();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!failure_.empty())
      throw ApiError(503, "The server cannot decode any more: " + failure_, "", "device_failure", "server_error");
    const int64_t free_rows = max_batch_ - live_;
    const int64_t waiting = static_cast<int64_t>(queue_.size() + choices.size()) - std::max<int64_t>(free_rows, 0);
    if (waiting > max_queue_)
      throw ApiError(429, "The server is busy: " + std::to_string(queue_.size()) + " sequences wait for one of " +
                              std::to_string(max_batch_) + " rows (--max-queue " + std::to_string(max_queue_) +
                              "). Retry later.", "", "queue_full", "rate_limit_error");
    for (size_t c = 0; c < choices.size(); ++c) queue_.push_back({request, c, std::move(choices[c])});
    metrics_.set_queue_depth(static_cast<int64_t>(queue_.size()));
  }
  cv_.notify_all();
  return request;
}

void Scheduler::admit(Waiting w, int64_t row) {
  autograd::NoGradScope no_grad;
  const auto request = w.request;
  const size_t choice = w.choice;
  try {
    const int64_t L = static_cast<int64_t>(w.spec.prompt.size());
    state_.reopen_row(row);
    const Tensor prefix = prompt_as_prefix_ ? Tensor::from_host_i32(ctx_, Shape{1}, {static_cast<int32_t>(L)}) : Tensor();
    const Tensor last =
        model_.prefill(Tensor::from_host_i32(ctx_, Shape{1, L}, w.spec.prompt), state_, row, prefix);  // (1, V)
    ops::copy_into(last, logits_.narrow_rows(row, row + 1));
    rows_[row] = std::make_unique<Row>(ctx_, vocab_, std::move(w));
    metrics_.add_prompt_tokens(L);
    std::lock_guard<std::mutex> lock(mutex_);
    ++live_;
  } catch (const std::exception& e) {
    state_.end_row(row);
    Event ev;
    ev.choice = choice;
    ev.error = e.what();
    request->push(std::move(ev));
  }
}

void Scheduler::finish(int64_t row, std::optional<generate::FinishReason> why, Event ev) {
  Row& r = *rows_[row];
  state_.end_row(row);  // its keys and values go back to the pool now
  r.stream.finish();
  ev.text += r.stream.take_ready();
  ev.finish = why ? why : std::optional(generate::FinishReason::length);
  r.request->push(std::move(ev));
  rows_[row].reset();
  std::lock_guard<std::mutex> lock(mutex_);
  --live_;
}

void Scheduler::sample_and_finish() {
  autograd::NoGradScope no_grad;
  // Cancelled rows leave before sampling.
  for (int64_t b = 0; b < max_batch_; ++b)
    if (rows_[b] && rows_[b]->request->cancelled()) {
      Event ev;
      ev.choice = rows_[b]->choice;
      finish(b, std::nullopt, std::move(ev));
    }
  int64_t live = 0;
  for (int64_t b = 0; b < max_batch_; ++b) {
    if (!rows_[b]) continue;
    ++live;
    const Tensor id = rows_[b]->sampler.sample(logits_.narrow_rows(b, b + 1), rows_[b]->step);  // (1) i32
    ops::copy_into(id, ids_.narrow_rows(b, b + 1));
  }
  if (live == 0) {
    metrics_.set_batch_size(0);
    return;
  }
  const std::vector<int32_t> ids = ids_.to_host_i32();  // the one read per step
  int64_t tokens = 0;
  for (int64_t b = 0; b < max_batch_; ++b) {
    if (!rows_[b]) continue;
    Row& r = *rows_[b];
    const int32_t id = ids[b];
    ++r.step;
    ++tokens;
    Event ev;
    ev.choice = r.choice;
    ev.ids.push_back(id);
    if (r.spec.logprobs) ev.logprobs.push_back(logprob_of(logits_.narrow_rows(b, b + 1).to_host(), id, *r.spec.logprobs));
    {
      std::lock_guard<std::mutex> lock(r.request->mutex_);
      if (!r.request->first_token_) {
        r.request->first_token_ = true;
        metrics_.record_first_token(std::chrono::duration<double>(Clock::now() - r.request->arrival_).count());
      }
    }
    if (std::find(eos_ids_.begin(), eos_ids_.end(), id) != eos_ids_.end()) {
      finish(b, generate::FinishReason::eos, std::move(ev));
      continue;
    }
    const bool stopped = token_bytes_ && r.stream.append(token_bytes_(id));
    ev.text = r.stream.take_ready();
    if (stopped) {
      finish(b, generate::FinishReason::stop, std::move(ev));
    } else if (r.step >= r.spec.max_tokens) {
      finish(b, generate::FinishReason::length, std::move(ev));
    } else {
      r.request->push(std::move(ev));
    }
  }
  metrics_.record_step(live, tokens);
  int64_t left = 0;
  for (const auto& r : rows_) left += r != nullptr;
  metrics_.set_batch_size(left);
}

void Scheduler::loop() {
  for (;;) {
    std::vector<std::pair<Waiting, int64_t>> admitted;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return stopping_ || (failure_.empty() && (!queue_.empty() || live_ > 0)); });
      if (stopping_) return;
      int64_t next_free = 0;
      auto taken = [&](int64_t b) {
        return rows_[b] || std::any_of(admitted.begin(), admitted.end(), [&](const auto& a) { return a.second == b; });
      };
      while (!queue_.empty()) {
        if (queue_.front().request->cancelled()) {  // gone before it got a row
          Waiting w = std::move(queue_.front());
          queue_.pop_front();
          Event ev;
          ev.choice = w.choice;
          ev.finish = generate::FinishReason::length;
          w.request->push(std::move(ev));
          continue;
        }
        while (next_free < max_batch_ && taken(next_free)) ++next_free;
        if (next_free == max_batch_) break;
        admitted.emplace_back(std::move(queue_.front()), next_free);
        queue_.pop_front();
      }
      metrics_.set_queue_depth(static_cast<int64_t>(queue_.size()));
    }
    try {
      for (auto& [w, row] : admitted) admit(std::move(w), row);
      sample_and_finish();
      bool any = false;
      for (const auto& r : rows_) any = any || r;
      if (any) {
        autograd::NoGradScope no_grad;
        logits_ = model_.step(ids_, state_);  // (B, V)
      }
      const auto& mem = ctx_.memory();
      metrics_.set_device_memory(mem.current_total(), mem.current_reserved(), mem.peak_reserved());
    } catch (const std::exception& e) {
      // A device failure mid-step leaves the batch's state unknown: every live sequence fails,
      // and the server stops accepting work (GET /health says why).
      std::lock_guard<std::mutex> lock(mutex_);
      failure_ = e.what();
      for (auto& r : rows_)
        if (r) {
          Event ev;
          ev.choice = r->choice;
          ev.error = failure_;
          r->request->push(std::move(ev));
          r.reset();
        }
      live_ = 0;
      for (auto& w : queue_) {
        Event ev;
        ev.choice = w.choice;
        ev.error = failure_;
        w.request->push(std::move(ev));
      }
      queue_.clear();
    }
  }
}

}  // namespace magellano::serve
