// Autograd-lite: ops record a backward closure on the tape when an input requires a gradient;
// backward(loss) replays the closures newest first, accumulating into each leaf's .grad.
//
// A closure captures the AutogradMeta of the inputs it must send gradients to, and only the
// tensors (values) its backward really needs. It is destroyed right after it runs, which frees
// those saved tensors. Gradients of intermediate tensors are freed once consumed; leaves keep
// theirs, and later backwards add to them until Tensor::zero_grad().
#pragma once
#include <cstddef>
#include <functional>
#include <memory>
#include <vector>

#include "magellano/tensor/tensor.hpp"

namespace magellano::autograd {

bool grad_enabled();

// Within this scope ops record nothing (inference, optimizer updates, backward itself).
class NoGradScope {
 public:
  NoGradScope();
  ~NoGradScope();
  NoGradScope(const NoGradScope&) = delete;
  NoGradScope& operator=(const NoGradScope&) = delete;

 private:
  bool previous_;
};

// Within this scope ops record again (the recompute of a checkpointed segment inside backward).
class EnableGradScope {
 public:
  EnableGradScope();
  ~EnableGradScope();
  EnableGradScope(const EnableGradScope&) = delete;
  EnableGradScope& operator=(const EnableGradScope&) = delete;

 private:
  bool previous_;
};

// A fresh, empty tape for the lifetime of the scope; the enclosing tape is put back on exit
// (whatever the nested tape still holds is dropped). Gradient checkpointing records a
// segment's recompute on a nested tape and runs backward on it, inside the outer backward.
class NestedTape {
 public:
  NestedTape();
  ~NestedTape();
  NestedTape(const NestedTape&) = delete;
  NestedTape& operator=(const NestedTape&) = delete;

 private:
  struct Saved;
  std::unique_ptr<Saved> saved_;
};

// True when grad mode is on and any defined input requires a gradient.
bool any_requires_grad(std::initializer_list<Tensor> inputs);

// The meta of t when t needs a gradient, else nullptr (a closure skips those inputs).
std::shared_ptr<AutogradMeta> grad_meta(const Tensor& t);

// Marks `output` as requiring a gradient and records `backward`, which receives the gradient
// of `output` (f32, output's shape) when backward reaches it.
void record(const Tensor& output, std::function<void(const Tensor& grad_out)> backward);

// Where a backward writes an input's gradient. When `accumulate` is false the buffer holds
// nothing valid and must be overwritten; when true the kernel adds to it. The tensor has the
// input's grad_dtype: an f16 gradient (of an fp16-stored parameter) is returned only to a
// caller that says it writes fp16 (`f16_ok`); any other caller gets an Error naming the
// tensor, so an op that only writes f32 cannot silently replace the optimizer's fp16 buffer.
struct GradTarget {
  Tensor tensor;
  bool accumulate = false;
};
GradTarget grad_target(const std::shared_ptr<AutogradMeta>& input, bool f16_ok = false);

// Runs the tape newest first from `loss` (seed: dloss, default all ones) and empties it.
void backward(const Tensor& loss, const Tensor& seed = Tensor());
// Several roots at once: outputs[i] receives seeds[i] (f32, its shape) as its gradient; roots
// whose seed is undefined or that require no gradient are skipped. Then the tape runs as above.
void backward(const std::vector<Tensor>& outputs, const std::vector<Tensor>& seeds);

size_t tape_size();
void clear_tape();  // drops every recorded closure (e.g. after an evaluation forward)

// Watches the outermost tape of this thread (not the nested tapes of checkpointed segments):
// data-parallel training starts a bucket's gradient exchange as soon as backward has passed
// every node that can write its parameters (train/gradient_sync.hpp). One at a time.
class TapeObserver {
 public:
  virtual ~TapeObserver() = default;
  // grad_meta() handed out m while the outermost tape held `tape_size` nodes: only nodes
  // recorded from then on (index >= tape_size) can write m's gradient through it.
  virtual void used(const AutogradMeta& m, size_t tape_size) = 0;
  // backward finished a node of the outermost tape; `tape_size` nodes remain on it.
  virtual void node_done(size_t tape_size) = 0;
  // a backward (at any depth) is about to write or add to leaf m's gradient.
  virtual void leaf_written(const AutogradMeta& m) = 0;
};
// nullptr: none. The observer must outlive its registration.
void set_tape_observer(TapeObserver* observer);

}  // namespace magellano::autograd
