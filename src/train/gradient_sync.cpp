#include "magellano/train/gradient_sync.hpp"

#include <CL/cl.h>

#include <algorithm>
#include <chrono>
#include <limits>

#include "magellano/io/st_dtype.hpp"
#include "magellano/optim/shard.hpp"
#include "magellano/runtime/context.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::train {
namespace {

constexpr size_t kUnseen = std::numeric_limits<size_t>::max();

uint64_t byte_offset(const Tensor& t, int64_t start) { return (t.offset() + uint64_t(start)) * dtype_size(t.dtype()); }

// Enqueues a non-blocking read of elements [start, start + count) of t into host; its event.
Event read_async(Context& ctx, const Tensor& t, int64_t start, int64_t count, void* host) {
  cl_event e = nullptr;
  check_cl(clEnqueueReadBuffer(ctx.queue(), t.buffer(), CL_FALSE, byte_offset(t, start),
                               uint64_t(count) * dtype_size(t.dtype()), host, 0, nullptr, &e),
           "clEnqueueReadBuffer", "reading gradients for the all-reduce");
  return Event(e, "reading gradients for the all-reduce");
}

void read(Context& ctx, const Tensor& t, int64_t start, int64_t count, void* host) {
  check_cl(clEnqueueReadBuffer(ctx.queue(), t.buffer(), CL_TRUE, byte_offset(t, start),
                               uint64_t(count) * dtype_size(t.dtype()), host, 0, nullptr, nullptr),
           "clEnqueueReadBuffer", "reading parameters for their hash");
}

void write(Context& ctx, const Tensor& t, int64_t start, int64_t count, const void* host) {
  check_cl(clEnqueueWriteBuffer(ctx.queue(), t.buffer(), CL_TRUE, byte_offset(t, start),
                                uint64_t(count) * dtype_size(t.dtype()), host, 0, nullptr, nullptr),
           "clEnqueueWriteBuffer", "writing all-reduced gradients");
}

}  // namespace

GradientSync::GradientSync(Collective& ranks, const optim::ParameterPack& pack,
                           const std::vector<optim::Parameter>& model_order, bool bf16, int64_t bucket_elements, bool scatter)
    : ranks_(ranks), pack_(pack), bf16_(bf16), scatter_(scatter) {
  if (bucket_elements <= 0) throw Error("gradient all-reduce: the bucket size must be positive.");
  const auto& packed = pack.params();
  for (size_t i = 0; i < packed.size(); ++i) param_of_[packed[i].param.tensor.meta().get()] = i;
  // The packed parameters in the reverse of the model's order (each once; any the list lacks last).
  std::vector<size_t> order;
  std::vector<bool> listed(packed.size(), false);
  for (auto it = model_order.rbegin(); it != model_order.rend(); ++it) {
    if (!it->tensor.defined()) continue;
    const auto found = param_of_.find(it->tensor.meta().get());
    if (found == param_of_.end() || listed[found->second]) continue;
    listed[found->second] = true;
    order.push_back(found->second);
  }
  for (size_t i = 0; i < packed.size(); ++i)
    if (!listed[i]) order.push_back(i);
  bucket_of_.assign(packed.size(), 0);
  for (size_t i : order) {
    const optim::PackedParam& p = packed[i];
    const optim::PackChunk* chunk = &pack.chunks()[size_t(p.chunk)];
    const int64_t n = p.param.tensor.numel();
    for (int64_t s = 0; s < n;) {
      if (buckets_.empty() || buckets_.back().count == bucket_elements) buckets_.emplace_back();
      if (s == 0) bucket_of_[i] = buckets_.size() - 1;
      Bucket& b = buckets_.back();
      const int64_t take = std::min(n - s, bucket_elements - b.count);
      b.pieces.push_back({chunk, p.offset + s, take, i, 0, 0});
      b.count += take;
      s += take;
    }
  }
  // Buffer places; scatter: each piece cut at the shares' edges, the pieces grouped by owner.
  const int n_ranks = scatter ? ranks.size() : 1;
  std::vector<std::vector<optim::ElementRange>> shares;  // [rank][chunk]
  for (int r = 0; r < n_ranks; ++r) shares.push_back(optim::shard_ranges(pack, r, n_ranks));
  for (Bucket& b : buckets_) {
    std::vector<Piece> grouped;
    b.counts.assign(size_t(n_ranks), 0);
    for (int r = 0; r < n_ranks; ++r) {
      if (r == ranks.rank()) b.mine_at = int64_t(grouped.empty() ? 0 : grouped.back().at + grouped.back().count);
      for (const Piece& p : b.pieces) {
        const optim::ElementRange share = shares[size_t(r)][size_t(p.chunk - pack.chunks().data())];
        const int64_t lo = std::max(p.start, share.begin), hi = std::min(p.start + p.count, share.end);
        if (lo >= hi) continue;
        const int64_t at = grouped.empty() ? 0 : grouped.back().at + grouped.back().count;
        grouped.push_back({p.chunk, lo, hi - lo, p.param, r, at});
        b.counts[size_t(r)] += int(hi - lo);
      }
    }
    b.pieces = std::move(grouped);
  }
  first_use_.assign(packed.size(), kUnseen);
}

GradientSync::~GradientSync() {
  if (watching_) autograd::set_tape_observer(nullptr);
}

void GradientSync::watch() {
  first_use_.assign(pack_.params().size(), kUnseen);
  next_ = 0;
  launched_ = 0;
  watching_ = true;
  autograd::set_tape_observer(this);
}

void GradientSync::used(const AutogradMeta& m, size_t tape_size) {
  const auto it = param_of_.find(&m);
  if (it == param_of_.end()) return;
  size_t& first = first_use_[it->second];
  if (first == kUnseen || tape_size < first) first = tape_size;
}

bool GradientSync::ready(size_t k, size_t tape_size) const {
  for (const Piece& p : buckets_[k].pieces)
    if (first_use_[p.param] == kUnseen || tape_size > first_use_[p.param]) return false;
  return true;
}

void GradientSync::node_done(size_t tape_size) {
  // Only nodes recorded at index >= first_use can write a parameter's gradient; once the tape
  // is down to first_use nodes, those have all run (their kernels are enqueued).
  while (next_ < buckets_.size() && ready(next_, tape_size)) {
    start(next_++);
    if (tape_size > 0) ++early_;  // (after the last node the backward is done: no overlap)
  }
  poll();
}

void GradientSync::leaf_written(const AutogradMeta& m) {
  const auto it = param_of_.find(&m);
  if (it == param_of_.end() || bucket_of_[it->second] >= next_) return;
  throw Error("gradient all-reduce: backward wrote the gradient of '" + pack_.params()[it->second].param.name +
              "' after its bucket was sent; set train.allreduce_overlap to false and report this.");
}

void GradientSync::start(size_t k) {
  if (k >= size_t(kSlots)) {
    launch(k - kSlots);  // (no-op if its sum has started)
    finish(k - kSlots);
  }
  Context& ctx = pack_.ctx();
  const Bucket& b = buckets_[k];
  Slot& slot = slots_[k % kSlots];
  if (slot.values.size() < size_t(b.count)) slot.values.resize(size_t(b.count));
  slot.reads.clear();
  slot.reads_done = 0;
  for (const Piece& p : b.pieces) {
    void* dst = slot.values.data() + p.at;
    if (p.chunk->dtype() != DType::f32) {
      if (slot.half.size() < size_t(b.count)) slot.half.resize(size_t(b.count));
      dst = slot.half.data() + p.at;
    }
    slot.reads.push_back(read_async(ctx, p.chunk->grads, p.start, p.count, dst));
  }
  check_cl(clFlush(ctx.queue()), "clFlush", "sending the gradient reads to the device");
}

void GradientSync::poll() {
  while (launched_ < next_) {
    Slot& slot = slots_[launched_ % kSlots];
    while (slot.reads_done < slot.reads.size() && slot.reads[slot.reads_done].done()) ++slot.reads_done;
    if (slot.reads_done < slot.reads.size()) return;
    launch_one(launched_++);
  }
}

void GradientSync::launch(size_t last) {
  for (; launched_ <= last; ++launched_) launch_one(launched_);
}

void GradientSync::launch_one(size_t k) {
  const Bucket& b = buckets_[k];
  Slot& slot = slots_[k % kSlots];
  for (Event& e : slot.reads) e.wait();
  slot.reads.clear();  // (all finished)
  for (const Piece& p : b.pieces)
    if (p.chunk->dtype() != DType::f32)
      for (int64_t i = 0; i < p.count; ++i) slot.values[size_t(p.at + i)] = io::f16_to_f32(slot.half[size_t(p.at + i)]);
  const uint64_t sent0 = ranks_.bytes_sent();
  if (bf16_) {
    slot.wire.resize(size_t(b.count));
    for (int64_t i = 0; i < b.count; ++i) slot.wire[size_t(i)] = io::f32_to_bf16(slot.values[size_t(i)]);
    slot.handle = scatter_ ? ranks_.start_sum_scatter_bf16(slot.wire, b.counts) : ranks_.start_sum_bf16(slot.wire);
  } else {
    const std::span<float> values(slot.values.data(), size_t(b.count));
    slot.handle = scatter_ ? ranks_.start_sum_scatter(values, b.counts) : ranks_.start_sum(values);
  }
  bytes_ += ranks_.bytes_sent() - sent0;
}

void GradientSync::finish(size_t k) {
  Context& ctx = pack_.ctx();
  const Bucket& b = buckets_[k];
  Slot& slot = slots_[k % kSlots];
  ranks_.wait(slot.handle);
  slot.handle = -1;
  // The sums: the whole buffer, or (scatter) this rank's group, now at the buffer's start.
  const int64_t base = scatter_ ? b.mine_at : 0;
  const int64_t n = scatter_ ? b.counts[size_t(ranks_.rank())] : b.count;
  if (bf16_)
    for (int64_t i = 0; i < n; ++i) slot.values[size_t(i)] = io::bf16_to_f32(slot.wire[size_t(i)]);
  for (const Piece& p : b.pieces) {
    if (scatter_ && p.owner != ranks_.rank()) continue;
    const float* src = slot.values.data() + (p.at - base);
    if (p.chunk->dtype() == DType::f32) {
      write(ctx, p.chunk->grads, p.start, p.count, src);
    } else {
      uint16_t* half = slot.half.data() + p.at;
      for (int64_t i = 0; i < p.count; ++i) half[i] = io::f32_to_f16(src[i]);
      write(ctx, p.chunk->grads, p.start, p.count, half);
    }
  }
}

void GradientSync::sum() {
  const bool overlapped = watching_;  // the same on every rank (train.allreduce_overlap)
  if (overlapped) {
    autograd::set_tape_observer(nullptr);
    watching_ = false;
  } else {
    next_ = 0;
    launched_ = 0;
  }
  Context& ctx = pack_.ctx();
  // The backward's kernels finish first, so seconds() counts the exchange, not the compute.
  check_cl(clFinish(ctx.queue()), "clFinish", "finishing the backward before the all-reduce");
  // One tiny collective first: the time spent waiting for slower ranks is kept apart from the
  // time of the exchange itself. Not with overlap: ranks may have started different numbers of
  // buckets by now, and collectives must come in the same order on every rank (the wait is then
  // part of seconds()).
  const auto ts = std::chrono::steady_clock::now();
  if (!overlapped) ranks_.all(true);
  const auto t0 = std::chrono::steady_clock::now();
  wait_seconds_ += std::chrono::duration<double>(t0 - ts).count();
  for (; next_ < buckets_.size(); ++next_) {
    start(next_);
    poll();
  }
  const size_t n = buckets_.size();
  for (size_t k = n > size_t(kSlots) ? n - kSlots : 0; k < n; ++k) {
    launch(k);  // (no-op if its sum has started)
    finish(k);
  }
  seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

uint64_t weights_hash(const optim::ParameterPack& pack) {
  uint64_t h = 0xcbf29ce484222325ull;
  std::vector<unsigned char> bytes;
  for (const auto& c : pack.chunks()) {
    bytes.resize(c.params.nbytes());
    read(pack.ctx(), c.params, 0, c.numel, bytes.data());
    for (unsigned char x : bytes) h = (h ^ x) * 0x100000001b3ull;
  }
  return h;
}

}  // namespace magellano::train
