// ParameterPack: the trainable parameters moved into a few flat f32 buffers ("chunks"), so the
// optimizer updates every tensor in one launch per chunk.
//
// Layout. Chunks hold at most max_chunk_bytes (default: min(device max allocation, 256 MiB));
// a parameter larger than that gets a chunk of its own. Parameters are placed in the order
// given, weight-decay ones first, then the others, each starting at a multiple of 64
// elements; so within a chunk the elements [0, decay_end) belong to the decay group and
// [decay_end, numel) to the no-decay group. Padding elements are zero in every chunk and stay
// zero under AdamW.
//
// Each parameter's tensor is rebound (Tensor::rebind) into its place in a parameter chunk
// (category parameters): every handle to it, e.g. the ones modules hold, sees the packed
// storage; values, shape, name and requires_grad are unchanged. Its AutogradMeta gets as grad
// a view at the same offset of the matching gradient chunk (category gradients), which
// backward then writes into. Parameters that do not require a gradient are left alone; a
// tensor listed twice (tied weights) is packed once, under its first name.
//
// dtype f16 (fp16 parameter storage): the parameters must be f16 tensors; the parameter and
// gradient chunks are f16 (2 bytes per element each). Backward (whose gradients are f32)
// cannot write into such a gradient view: fill the gradients yourself (e.g. ops::cast of an
// f32 gradient into the view) -- see optim::AdamWConfig::param_dtype.
#pragma once
#include <cstdint>
#include <vector>

#include "magellano/nn/module.hpp"

namespace magellano::optim {

struct PackedParam {
  nn::Parameter param;  // param.tensor now lives in chunks()[chunk].params
  int chunk = 0;
  int64_t offset = 0;   // element offset within the chunk
};

struct PackChunk {
  Tensor params;          // (numel) f32, or f16 for an f16 pack
  Tensor grads;           // (numel) same dtype as params
  int64_t numel = 0;      // elements, padding included
  int64_t decay_end = 0;  // elements [0, decay_end) are in the weight-decay group
};

class ParameterPack {
 public:
  static constexpr int64_t kAlign = 64;  // elements
  // max_chunk_bytes = 0: min(device max allocation, 256 MiB). Parameters must be of `dtype`
  // (f32 or f16).
  ParameterPack(Context& ctx, const std::vector<nn::Parameter>& params,
                uint64_t max_chunk_bytes = 0, DType dtype = DType::f32);
  DType dtype() const { return dtype_; }

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
  DType dtype_ = DType::f32;
  std::vector<PackedParam> params_;
  std::vector<PackChunk> chunks_;
};

}  // namespace magellano::optim
