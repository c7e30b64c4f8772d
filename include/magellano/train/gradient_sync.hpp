// Data-parallel gradient exchange: after every rank's backward, each packed gradient becomes the
// sum over ranks of that gradient, identical on every rank.
//
// Buckets. The trainable parameters, in the reverse of the model's order (the order backward
// produces their gradients in, roughly: the head first, the embedding last), are cut into
// buckets of at most `bucket_elements` values (a parameter larger than that spans several).
// Each bucket is read from the device into a host buffer (one non-blocking read per parameter
// piece, each with its event), converted to fp32 (f16 gradients exactly) once its reads have
// finished, summed across ranks in fp32 (Collective::start_sum), then rounded back to the
// gradient's dtype (f16: to nearest even) and written back. At most kSlots buckets travel at
// once: starting one more first finishes the oldest. Pack padding is not exchanged (zero on
// every rank, it stays zero).
// Reduce-scatter (`scatter`, train.zero_stage 1): each rank needs the summed gradients of its
// own ZeRO share only (optim/shard.hpp). Every bucket's pieces are further cut at the shares'
// edges, and its host buffer holds them grouped by the rank that owns them (rank 0's pieces
// first, each group in the bucket's order): one Collective::start_sum_scatter per bucket, with
// counts = the values of each rank's group (0 for a rank that owns none of the bucket). The
// sum of this rank's group comes back and only its pieces are written to the device; the
// other ranks' gradients stay this rank's own, unsummed: only this rank's share may be read
// after sum() (the sharded AdamW step reads only it; its norm sums partials over the ranks,
// train/zero_shard.hpp). Each element's sum is the all-reduce's (2 ranks: a + b either way), so
// the owner's gradients are bit-identical to the all-reduced ones, for half the bytes.
// Non-blocking reads: a bucket's reads are enqueued without waiting for the device (each into
// its slot's host buffer, flushed to the device at once), and its sum starts when they have all
// finished: polled after every backward node, at the latest before the optimizer. Sums start in
// bucket order on every rank (a finished later bucket waits for an earlier one), so the
// collectives and their sizes are the same as with blocking reads, and so are the results.
// A failed read throws an Error (runtime/cl_event.hpp) rather than hanging; the host buffers
// outlive their reads (an Event waits for its read before it is released, and a slot's events
// are released before its buffers).
// Overlap (train.allreduce_overlap): watch() before the forward of a step's last micro-batch
// registers this object as the autograd tape's observer (autograd/tape.hpp). The forward tells
// it, per parameter, the first tape node that can write its gradient; backward replays the tape
// newest first, and once it has passed that node for every parameter of the next bucket, the
// bucket's reads are enqueued right there, while backward goes on (the read runs once the
// device's queue has reached it; the host does not wait). Buckets start in their fixed order on every rank (a rank whose next bucket is not
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
#include "magellano/runtime/cl_event.hpp"
#include "magellano/train/collective.hpp"

namespace magellano::train {

class GradientSync final : private autograd::TapeObserver {
 public:
  static constexpr int kSlots = 4;  // buckets in flight at most (host buffers)
  // model_order: the model's trainable parameters in its own order (nn::Model::
  // trainable_parameters()), each packed in `pack`. bucket_elements: values per bucket
  // (default 4 Mi = 16 MiB of fp32 per host buffer).
  // scatter: the reduce-scatter above, over the shares of optim::shard_ranges(pack, r, ranks).
  GradientSync(Collective& ranks, const optim::ParameterPack& pack, const std::vector<optim::Parameter>& model_order,
               bool bf16 = false, int64_t bucket_elements = int64_t(1) << 22, bool scatter = false);
  ~GradientSync() override;

  // Overlap: call before the forward of the step's last micro-batch (see above).
  void watch();
  // grads <- sum over ranks of grads, for every packed parameter (scatter: for this rank's share;
  // collective; blocking).
  void sum();
  // Wall-clock seconds spent in sum() so far, once the device has finished the backward and all
  // ranks have arrived: host reads, the exchange, writes (with overlap: what is left of them).
  double seconds() const { return seconds_; }
  // ... and waiting for the slowest rank to arrive (load imbalance, not communication).
  double wait_seconds() const { return wait_seconds_; }
  // Buckets started (their reads enqueued) during backward so far, before its last node (overlap).
  int64_t early_buckets() const { return early_; }
  // Bytes this rank sent for the gradient sums so far (Collective::bytes_sent's count).
  uint64_t bytes() const { return bytes_; }

 private:
  struct Piece {
    const optim::PackChunk* chunk;
    int64_t start, count;  // elements within the chunk
    size_t param;          // index into pack.params()
    int owner;             // scatter: the rank whose share holds it (else 0)
    int64_t at;            // its first value in the bucket's host buffer
  };
  struct Bucket {
    std::vector<Piece> pieces;  // in buffer order (scatter: grouped by owner)
    int64_t count = 0;          // values
    std::vector<int> counts;    // scatter: values per rank's group (start_sum_scatter's counts)
    int64_t mine_at = 0;        // scatter: where this rank's group starts in the buffer
  };
  struct Slot {  // the host side of one bucket in flight
    std::vector<float> values;
    std::vector<uint16_t> wire;  // bf16: the bits sent
    std::vector<uint16_t> half;  // f16 gradients as read (at their pieces' offsets)
    std::vector<Event> reads;    // after the buffers: released (waited for) before they are freed
    size_t reads_done = 0;       // reads[0, reads_done) have finished
    int handle = -1;             // the sum's handle once started
  };
  void used(const AutogradMeta& m, size_t tape_size) override;
  void node_done(size_t tape_size) override;
  void leaf_written(const AutogradMeta& m) override;
  void start(size_t k);   // enqueues bucket k's reads (finishing bucket k - kSlots first)
  void poll();            // starts the sums of the next buckets whose reads have finished
  void launch(size_t last);     // starts the sums of the buckets up to `last`, in order
  void launch_one(size_t k);    // waits for bucket k's reads and starts its sum
  void finish(size_t k);  // waits for bucket k's sum and writes it back
  bool ready(size_t k, size_t tape_size) const;

  Collective& ranks_;
  const optim::ParameterPack& pack_;
  bool bf16_, scatter_;
  std::vector<Bucket> buckets_;
  std::map<const AutogradMeta*, size_t> param_of_;  // packed parameter index by its meta
  std::vector<size_t> bucket_of_;                   // per packed parameter: its first bucket
  std::vector<size_t> first_use_;                   // per packed parameter (watch(); SIZE_MAX: unseen)
  size_t next_ = 0;       // the next bucket to start (read)
  size_t launched_ = 0;   // the next bucket whose sum to start
  bool watching_ = false;
  Slot slots_[kSlots];
  double seconds_ = 0, wait_seconds_ = 0;
  int64_t early_ = 0;
  uint64_t bytes_ = 0;
};

// FNV-1a (64-bit) over the bytes of every parameter chunk of `pack`, in chunk order.
uint64_t weights_hash(const optim::ParameterPack& pack);

}  // namespace magellano::train
