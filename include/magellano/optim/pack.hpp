// ParameterPack: the trainable parameters moved into a few flat buffers ("chunks"), so the
// optimizer updates every tensor in one launch per chunk.
//
// Layout. Parameters are f32 or f16 (fp16 storage); a chunk holds one dtype. Chunks hold at
// most max_chunk_bytes (default: min(device max allocation, 256 MiB)); a parameter larger than
// that gets a chunk of its own. The f32 parameters come first, then the f16 ones; within each
// dtype the weight-decay ones first, then the others, each starting at a multiple of 64
// elements; so within a chunk the elements [0, decay_end) belong to the decay group and
// [decay_end, numel) to the no-decay group. Padding elements are zero in every chunk and stay
// zero under AdamW.
//
// Each parameter's tensor is rebound (Tensor::rebind) into its place in a parameter chunk
// (category parameters): every handle to it, e.g. the ones modules hold, sees the packed
// storage; values, shape, name and requires_grad are unchanged. Its AutogradMeta gets as grad
// a view at the same offset of the matching gradient chunk (category gradients, the
// parameter's dtype), which backward then writes into (an f16 one through
// ops::accumulate_grad). Parameters that do not require a gradient are left alone; a tensor
// listed twice (tied weights) is packed once, under its first name.
#pragma once
#include <cstdint>
#include <vector>

#include "magellano/optim/parameter.hpp"

namespace magellano::optim {

struct PackedParam {
  Parameter param;  // param.tensor now lives in chunks()[chunk].params
  int chunk = 0;
  int64_t offset = 0;   // element offset within the chunk
};

struct PackChunk {
  Tensor params;          // (numel) f32 or f16
  Tensor grads;           // (numel) same dtype as params
  int64_t numel = 0;      // elements, padding included
  int64_t decay_end = 0;  // elements [0, decay_end) are in the weight-decay group
  DType dtype() const { return params.dtype(); }
};

class ParameterPack {
 public:
  static constexpr int64_t kAlign = 64;  // elements
  // max_chunk_bytes = 0: min(device max allocation, 256 MiB). Parameters must be f32 or f16.
  ParameterPack(Context& ctx, const std::vector<Parameter>& params, uint64_t max_chunk_bytes = 0);

  Context& ctx() const { return *ctx_; }
  const std::vector<PackedParam>& params() const { return params_; }
  const std::vector<PackChunk>& chunks() const { return chunks_; }
  int64_t numel() const;  // parameter elements, padding excluded

  // Zeros every gradient chunk (one fill per chunk) and marks every packed gradient valid, so
  // a parameter no backward reaches (an idle expert) holds zeros and later backwards add.
  void zero_grad();
  // grads *= s on the device (e.g. 1 / micro-batches after gradient accumulation).
  void scale_grads(float s);

 private:
  Context* ctx_;
  std::vector<PackedParam> params_;
  std::vector<PackChunk> chunks_;
};

}  // namespace magellano::optim
