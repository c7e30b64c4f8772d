// ZeRO stage 1 (train.zero_stage 1) for data-parallel training: each rank's AdamW keeps and
// updates the moments of its share of the parameters (optim/shard.hpp, optim::AdamWConfig::shard);
// this class moves what the shares produce between the ranks.
//
// Per step, the gradient exchange is a reduce-scatter (train/gradient_sync.hpp with the shares
// of optim/shard.hpp): each rank receives the sum over ranks of its own share's gradients only,
// half the bytes an all-reduce sends for 2 ranks. The clipping norm (and the loss scaler's
// finiteness check, which reads it) needs every gradient: the constructor hands AdamW
// sum_partials() (optim::AdamW::set_partials_sum), which sums each rank's per-group partial
// sums of squares of its share over the ranks (a few hundred floats per pack chunk, fp32
// MPI_SUM), so every rank computes the same norm, the same clip coefficient and the same skip
// decision. The trainer builds AdamW with norm_split = ranks with or without ZeRO, so no
// partial-sum group spans two shares and the norm is bit-identical to the unsharded run's
// (optim/adamw.hpp). After the sharded AdamW step:
// share_parameters() reads each rank's updated range of every pack chunk from the device and
// broadcasts it from that rank (MPI_Ibcast of the stored bytes, f32 or f16 as they are; all of a
// chunk's broadcasts in flight together), then writes the other ranks' ranges back to the
// device. Each element was updated by one rank with the arithmetic and the stochastic-rounding
// bits an unsharded run uses (they depend on the element's chunk position, not on its owner), so
// every rank ends with the weights an unsharded run computes, bit for bit.
//
// Checkpoints: gather_state() collects every rank's moments at rank 0 and returns the entries
// of the unsharded optimizer.safetensors, so a checkpoint does not depend on the sharding; a
// resume on any number of ranks, with or without ZeRO, loads it (optim::AdamW::load_state keeps
// each rank's part). Rank 0 briefly holds the full moments in host memory while it writes.
//
// Memory per rank: the moments (8 bytes per parameter fp32, 2 + 8/256 int8) shrink to about
// 1/N; weights and gradients stay whole; host buffers: one pack chunk's parameter bytes.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "magellano/io/safetensors.hpp"
#include "magellano/optim/adamw.hpp"
#include "magellano/train/collective.hpp"

namespace magellano::train {

class ZeroShard {
 public:
  // adamw must be built with .shard = ranks.rank(), .shards = ranks.size(); its norm's partial
  // sums go through sum_partials() from now on (this object must outlive adamw's steps).
  ZeroShard(Collective& ranks, optim::AdamW& adamw);

  // Every rank's updated parameter range to every rank (collective; blocking).
  void share_parameters();
  // partials <- their element-wise sum over ranks ((G) f32 on the device; collective; blocking).
  void sum_partials(const Tensor& partials);
  // Rank 0: the unsharded optimizer state entries (optim::AdamW::state_st); other ranks: none
  // (collective).
  std::vector<std::pair<std::string, io::StTensor>> gather_state() const;
  // Wall-clock seconds spent in share_parameters() so far, and the bytes it and sum_partials()
  // sent (Collective::bytes_sent's count).
  double seconds() const { return seconds_; }
  uint64_t bytes() const { return bytes_; }

 private:
  Collective& ranks_;
  const optim::AdamW& adamw_;
  std::vector<std::vector<optim::ElementRange>> ranges_;  // [rank][chunk]
  std::vector<uint8_t> host_;  // one chunk's parameter bytes
  std::vector<float> partials_;
  double seconds_ = 0;
  uint64_t bytes_ = 0;
};

}  // namespace magellano::train
