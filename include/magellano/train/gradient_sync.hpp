// Data-parallel gradient exchange: after every rank's backward, each packed gradient becomes the
// sum over ranks of that gradient, identical on every rank.
//
// Buckets. The trainable parameters, in the reverse of the model's order (the order backward
// produces their gradients in, roughly: the head first, the embedding last), are cut into
// buckets of at most `bucket_elements` values (a parameter larger than that spans several).
// Each bucket is read from the device into a host buffer (one read per parameter piece),
// converted to fp32 (f16 gradients exactly), summed across ranks in fp32
// (Collective::start_sum), then rounded back to the gradient's dtype (f16: to nearest even) and
// written back. At most kSlots buckets travel at once: starting one more first finishes the
// oldest. Pack padding is not exchanged (zero on every rank, it stays zero).
// With bf16 (train.allreduce_bf16) each bucket travels as bfloat16 (rounded to nearest even from
// the fp32 value): half the bytes, and about 3 significant digits per gradient; partial sums are
// rounded to bf16 too, so the error grows with the number of ranks. Every rank still receives
// the same values.
//
// Overlap (train.allreduce_overlap): watch() before the forward of a step's last micro-batch
// registers this object as the autograd tape's observer (autograd/tape.hpp). The forward tells
// it, per parameter, the first tape node that can write its gradient; backward replays the tape
// newest first, and once it has passed that node for every parameter of the next bucket, the
// bucket is started right there, while backward goes on (its read waits for the device's queue
// so far). Buckets start in their fixed order on every rank (a rank whose next bucket is not
// ready yet starts nothing), so all ranks issue the same collectives in the same order, with the
// same sizes as without overlap: the sums are bit-identical to the exchange after backward.
// sum() then starts the rest and waits. A parameter the forward did not see (e.g. inside a
// gradient-checkpointed segment, which runs on a nested tape) is ready only after backward. A
// write to a parameter whose bucket has started (a node that took its parameter without
// autograd::grad_meta) throws an Error naming it instead of summing a partial gradient.
//
// weights_hash: a 64-bit FNV-1a hash of every packed parameter's bytes (chunk by chunk), which
// ranks compare at each checkpoint: data-parallel ranks must hold identical weights.
#pragma once
#include <cstdint>
#include <map>
#include <vector>

#include "magellano/autograd/tape.hpp"
#include "magellano/optim/pack.hpp"
#include "magellano/train/collective.hpp"

namespace magellano::train {

class GradientSync final : private autograd::TapeObserver {
 public:
  static constexpr int kSlots = 4;  // buckets in flight at most (host buffers)
  // model_order: the model's trainable parameters in its own order (nn::Model::
  // trainable_parameters()), each packed in `pack`. bucket_elements: values per bucket
  // (default 4 Mi = 16 MiB of fp32 per host buffer).
  GradientSync(Collective& ranks, const optim::ParameterPack& pack, const std::vector<optim::Parameter>& model_order,
               bool bf16 = false, int64_t bucket_elements = int64_t(1) << 22);
  ~GradientSync() override;

  // Overlap: call before the forward of the step's last micro-batch (see above).
  void watch();
  // grads <- sum over ranks of grads, for every packed parameter (collective; blocking).
  void sum();
  // Wall-clock seconds spent in sum() so far, once the device has finished the backward and all
  // ranks have arrived: host reads, the exchange, writes (with overlap: what is left of them).
  double seconds() const { return seconds_; }
  // ... and waiting for the slowest rank to arrive (load imbalance, not communication).
  double wait_seconds() const { return wait_seconds_; }
  // Buckets started during backward so far, before its last node (overlap).
  int64_t early_buckets() const { return early_; }

 private:
  struct Piece {
    const optim::PackChunk* chunk;
    int64_t start, count;  // elements within the chunk
    size_t param;          // index into pack.params()
  };
  struct Bucket {
    std::vector<Piece> pieces;
    int64_t count = 0;  // values
  };
  void used(const AutogradMeta& m, size_t tape_size) override;
  void node_done(size_t tape_size) override;
  void leaf_written(const AutogradMeta& m) override;
  void start(size_t k);   // reads bucket k and starts its sum (finishing bucket k - kSlots first)
  void finish(size_t k);  // waits for bucket k's sum and writes it back
  bool ready(size_t k, size_t tape_size) const;

  Collective& ranks_;
  const optim::ParameterPack& pack_;
  bool bf16_;
  std::vector<Bucket> buckets_;
  std::map<const AutogradMeta*, size_t> param_of_;  // packed parameter index by its meta
  std::vector<size_t> bucket_of_;                   // per packed parameter: its first bucket
  std::vector<size_t> first_use_;                   // per packed parameter (watch(); SIZE_MAX: unseen)
  size_t next_ = 0;       // the next bucket to start
  bool watching_ = false;
  std::vector<float> slots_[kSlots];
  std::vector<uint16_t> wire_[kSlots];  // bf16: the bits each slot sends
  int handles_[kSlots] = {-1, -1, -1, -1};
  std::vector<uint16_t> half_;  // f16 bits of one piece on their way to or from the device
  double seconds_ = 0, wait_seconds_ = 0;
  int64_t early_ = 0;
};

// FNV-1a (64-bit) over the bytes of every parameter chunk of `pack`, in chunk order.
uint64_t weights_hash(const optim::ParameterPack& pack);

}  // namespace magellano::train
