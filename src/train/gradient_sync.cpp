#include "magellano/train/gradient_sync.hpp"

#include <CL/cl.h>

#include <chrono>

#include "magellano/io/st_dtype.hpp"
#include "magellano/runtime/context.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::train {
namespace {

struct Bucket {
  const optim::PackChunk* chunk;
  int64_t start, count;  // elements within the chunk
};

uint64_t byte_offset(const Tensor& t, int64_t start) { return (t.offset() + uint64_t(start)) * dtype_size(t.dtype()); }

void read(Context& ctx, const Tensor& t, int64_t start, int64_t count, void* host) {
  check_cl(clEnqueueReadBuffer(ctx.queue(), t.buffer(), CL_TRUE, byte_offset(t, start),
                               uint64_t(count) * dtype_size(t.dtype()), host, 0, nullptr, nullptr),
           "clEnqueueReadBuffer", "reading gradients for the all-reduce");
}

void write(Context& ctx, const Tensor& t, int64_t start, int64_t count, const void* host) {
  check_cl(clEnqueueWriteBuffer(ctx.queue(), t.buffer(), CL_TRUE, byte_offset(t, start),
                                uint64_t(count) * dtype_size(t.dtype()), host, 0, nullptr, nullptr),
           "clEnqueueWriteBuffer", "writing all-reduced gradients");
}

}  // namespace

GradientSync::GradientSync(Collective& ranks, bool bf16, int64_t bucket_elements)
    : ranks_(ranks), bf16_(bf16), bucket_(bucket_elements) {
  if (bucket_ <= 0) throw Error("gradient all-reduce: the bucket size must be positive.");
}

void GradientSync::sum(const optim::ParameterPack& pack) {
  Context& ctx = pack.ctx();
  // The backward's kernels finish first, so seconds() counts the exchange, not the compute.
  check_cl(clFinish(ctx.queue()), "clFinish", "finishing the backward before the all-reduce");
  // One tiny collective first: the time spent waiting for slower ranks is kept apart from the
  // time of the exchange itself.
  const auto ts = std::chrono::steady_clock::now();
  ranks_.all(true);
  const auto t0 = std::chrono::steady_clock::now();
  wait_seconds_ += std::chrono::duration<double>(t0 - ts).count();
  std::vector<Bucket> buckets;
  for (const auto& c : pack.chunks())
    for (int64_t s = 0; s < c.numel; s += bucket_) buckets.push_back({&c, s, std::min(bucket_, c.numel - s)});
  int handles[2] = {-1, -1};
  // Bucket k lives in slot k % 2 from its read until its write-back.
  auto finish = [&](size_t k) {
    const Bucket& b = buckets[k];
    std::vector<float>& slot = slots_[k % 2];
    ranks_.wait(handles[k % 2]);
    handles[k % 2] = -1;
    if (bf16_)
      for (int64_t i = 0; i < b.count; ++i) slot[size_t(i)] = io::bf16_to_f32(wire_[k % 2][size_t(i)]);
    if (b.chunk->dtype() == DType::f32) {
      write(ctx, b.chunk->grads, b.start, b.count, slot.data());
    } else {
      half_.resize(size_t(b.count));
      for (int64_t i = 0; i < b.count; ++i) half_[size_t(i)] = io::f32_to_f16(slot[size_t(i)]);
      write(ctx, b.chunk->grads, b.start, b.count, half_.data());
    }
  };
  for (size_t k = 0; k < buckets.size(); ++k) {
    if (k >= 2) finish(k - 2);
    const Bucket& b = buckets[k];
    std::vector<float>& slot = slots_[k % 2];
    if (slot.size() < size_t(b.count)) slot.resize(size_t(b.count));
    if (b.chunk->dtype() == DType::f32) {
      read(ctx, b.chunk->grads, b.start, b.count, slot.data());
    } else {
      half_.resize(size_t(b.count));
      read(ctx, b.chunk->grads, b.start, b.count, half_.data());
      for (int64_t i = 0; i < b.count; ++i) slot[size_t(i)] = io::f16_to_f32(half_[size_t(i)]);
    }
    if (bf16_) {
      std::vector<uint16_t>& wire = wire_[k % 2];
      wire.resize(size_t(b.count));
      for (int64_t i = 0; i < b.count; ++i) wire[size_t(i)] = io::f32_to_bf16(slot[size_t(i)]);
      handles[k % 2] = ranks_.start_sum_bf16(wire);
    } else {
      handles[k % 2] = ranks_.start_sum(std::span<float>(slot.data(), size_t(b.count)));
    }
  }
  for (size_t k = buckets.size() >= 2 ? buckets.size() - 2 : 0; k < buckets.size(); ++k) finish(k);
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
