// Data-parallel gradient exchange: after every rank's backward, each packed gradient becomes the
// sum over ranks of that gradient, identical on every rank.
//
// How: the gradient chunks of the ParameterPack (optim/pack.hpp) are cut into buckets of at most
// `bucket_elements` values; each bucket is read from the device into one of two host buffers,
// converted to fp32 (f16 gradients exactly), summed across ranks in fp32 (Collective::start_sum)
// while the next bucket is read, then rounded back to the gradient's dtype (f16: to nearest even)
// and written back. Padding elements are zero on every rank and stay zero.
// With bf16 (train.allreduce_bf16) each bucket travels as bfloat16 (rounded to nearest even from
// the fp32 value): half the bytes, and about 3 significant digits per gradient; partial sums are
// rounded to bf16 too, so the error grows with the number of ranks. Every rank still receives
// the same values.
// The exchange starts after the whole backward (the autograd tape has no per-parameter completion
// hook to start a bucket earlier); its time is reported as the communication share of a step.
//
// weights_hash: a 64-bit FNV-1a hash of every packed parameter's bytes (chunk by chunk), which
// ranks compare at each checkpoint: data-parallel ranks must hold identical weights.
#pragma once
#include <cstdint>
#include <vector>

#include "magellano/optim/pack.hpp"
#include "magellano/train/collective.hpp"

namespace magellano::train {

class GradientSync {
 public:
  // bucket_elements: values per bucket (default 4 Mi = 16 MiB of fp32 per host buffer).
  explicit GradientSync(Collective& ranks, bool bf16 = false, int64_t bucket_elements = int64_t(1) << 22);

  // grads <- sum over ranks of grads, for every chunk of `pack` (collective; blocking).
  void sum(const optim::ParameterPack& pack);
  // Wall-clock seconds spent in sum() so far, once the device has finished the backward and all
  // ranks have arrived: host reads, the exchange, writes.
  double seconds() const { return seconds_; }
  // ... and waiting for the slowest rank to arrive (load imbalance, not communication).
  double wait_seconds() const { return wait_seconds_; }

 private:
  Collective& ranks_;
  bool bf16_;
  int64_t bucket_;
  std::vector<float> slots_[2];  // the two host buffers (bucket_ values each)
  std::vector<uint16_t> half_;   // f16 bits of one bucket on their way to or from the device
  std::vector<uint16_t> wire_[2];  // bf16: the bits each slot sends
  double seconds_ = 0, wait_seconds_ = 0;
};

// FNV-1a (64-bit) over the bytes of every parameter chunk of `pack`, in chunk order.
uint64_t weights_hash(const optim::ParameterPack& pack);

}  // namespace magellano::train
