#include "magellano/train/zero_shard.hpp"

#include <CL/cl.h>

#include <algorithm>
#include <chrono>

#include "magellano/runtime/context.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::train {
namespace {

constexpr uint64_t kPiece = uint64_t(1) << 30;  // bytes per broadcast (Collective::start_broadcast)

// Elements [r.begin, r.end) of the (numel) chunk tensor t from / to host bytes laid out as the
// whole chunk.
void transfer(Context& ctx, const Tensor& t, optim::ElementRange r, uint8_t* host, bool to_device) {
  if (r.size() == 0) return;
  const uint64_t es = dtype_size(t.dtype());
  const uint64_t offset = (t.offset() + uint64_t(r.begin)) * es, bytes = uint64_t(r.size()) * es;
  if (to_device)
    check_cl(clEnqueueWriteBuffer(ctx.queue(), t.buffer(), CL_TRUE, offset, bytes, host + uint64_t(r.begin) * es, 0,
                                  nullptr, nullptr),
             "clEnqueueWriteBuffer", "writing the parameters of the other ranks' shares (ZeRO)");
  else
    check_cl(clEnqueueReadBuffer(ctx.queue(), t.buffer(), CL_TRUE, offset, bytes, host + uint64_t(r.begin) * es, 0,
                                 nullptr, nullptr),
             "clEnqueueReadBuffer", "reading this rank's updated parameters (ZeRO)");
}

}  // namespace

ZeroShard::ZeroShard(Collective& ranks, optim::AdamW& adamw) : ranks_(ranks), adamw_(adamw) {
  if (adamw.config().shard != ranks.rank() || adamw.config().shards != ranks.size())
    throw Error("ZeRO: the optimizer is share " + std::to_string(adamw.config().shard) + " of " +
                std::to_string(adamw.config().shards) + ", but this is rank " + std::to_string(ranks.rank()) + " of " +
                std::to_string(ranks.size()) + ".");
  for (int r = 0; r < ranks.size(); ++r) ranges_.push_back(optim::shard_ranges(adamw.pack(), r, ranks.size()));
  if (ranks.size() > 1) adamw.set_partials_sum([this](const Tensor& partials) { sum_partials(partials); });
}

void ZeroShard::sum_partials(const Tensor& partials) {
  const uint64_t sent0 = ranks_.bytes_sent();
  partials_ = partials.to_host();  // (waits for the partial-sum kernels)
  ranks_.wait(ranks_.start_sum(partials_));
  Tensor(partials).copy_from_host(partials_.data(), partials_.size() * sizeof(float));
  bytes_ += ranks_.bytes_sent() - sent0;
}

void ZeroShard::share_parameters() {
  const auto t0 = std::chrono::steady_clock::now();
  const uint64_t sent0 = ranks_.bytes_sent();
  const optim::ParameterPack& pack = adamw_.pack();
  Context& ctx = pack.ctx();
  const int me = ranks_.rank();
  for (size_t k = 0; k < pack.chunks().size(); ++k) {
    const optim::PackChunk& c = pack.chunks()[k];
    const uint64_t es = dtype_size(c.dtype());
    host_.resize(size_t(c.numel) * es);
    transfer(ctx, c.params, ranges_[size_t(me)][k], host_.data(), false);  // waits for the step's kernels
    std::vector<int> handles;
    for (int r = 0; r < ranks_.size(); ++r) {
      const optim::ElementRange range = ranges_[size_t(r)][k];
      for (uint64_t at = uint64_t(range.begin) * es; at < uint64_t(range.end) * es; at += kPiece)
        handles.push_back(ranks_.start_broadcast(
            std::span<uint8_t>(host_.data() + at, std::min(kPiece, uint64_t(range.end) * es - at)), r));
    }
    for (int h : handles) ranks_.wait(h);
    for (int r = 0; r < ranks_.size(); ++r)
      if (r != me) transfer(ctx, c.params, ranges_[size_t(r)][k], host_.data(), true);
  }
  seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  bytes_ += ranks_.bytes_sent() - sent0;
}

std::vector<std::pair<std::string, io::StTensor>> ZeroShard::gather_state() const {
  optim::AdamW::StateArrays arrays = adamw_.owned_state();
  for (auto& chunk : arrays)
    for (auto& bytes : chunk) {
      bytes = ranks_.gather_bytes(bytes, 0);  // rank 0: every share of this array in rank order
      bytes.shrink_to_fit();
    }
  if (ranks_.rank() != 0) return {};
  return adamw_.state_st(arrays);
}

}  // namespace magellano::train
