// Turning logits into token ids on the device (cl/sample.cl): repetition penalty, temperature
// (0 = greedy), top-k, nucleus top-p, and a draw from a counter-based RNG, one work-group per
// row. Nothing but the result leaves the device: sample() returns the (B) i32 ids as a device
// tensor; the caller decides whether to read them back.
//
// Reproducibility: the draw of row r at step t uses Philox4x32-10 keyed by the seed with the
// counter (r, t), so it depends on nothing else (not on the batch size, the device, or earlier
// draws). Sums run in a fixed order with a fixed work-group size (128 on CPUs; 512 on GPUs, where
// one work-group per row runs on one compute unit: at 128 a phase1 row's top-k + top-p took 1.1 ms
// on the H100), so the same logits give the same ids on every device of a kind whose exp() rounds
// alike; logits themselves differ in their last bits between devices, which can change a draw
// that falls at a boundary. MAGELLANO_SAMPLE_LOCAL=N (a power of two) sets the size.
#pragma once
#include <cstdint>
#include <vector>

#include "magellano/runtime/build_options.hpp"
#include "magellano/tensor/tensor.hpp"

namespace magellano::generate {

struct SamplingParams {
  float temperature = 1.0f;         // <= 0: greedy (argmax, ties to the lowest id)
  int64_t top_k = 0;                // 0 (or >= V): off
  float top_p = 1.0f;               // >= 1: off; in (0, 1): nucleus; 0 keeps only the maximum
  float repetition_penalty = 1.0f;  // 1: off; HF's: divide positive logits, multiply negative
  uint64_t seed = 0;
};

// Throws magellano::Error (one line naming the option) for a NaN or negative temperature, a
// negative top_k, top_p outside [0, 1], or a penalty that is not positive and finite.
void validate(const SamplingParams& p);

class Sampler {
 public:
  // batch rows of a vocabulary of `vocab` ids. context: one list of ids per row (the prompts),
  // the ids the repetition penalty starts from; empty = none.
  Sampler(Context& ctx, int64_t batch, int64_t vocab, const SamplingParams& params,
          const std::vector<std::vector<int32_t>>& context = {});

  // logits: (B, V) f32 -> ids (B) i32 on the device; row r draws with counter (r, step). The
  // sampled ids join each row's context for the repetition penalty.
  Tensor sample(const Tensor& logits, int64_t step);
  // The filtered, renormalised distribution the draw of `step` uses ((B, V) f32, 0 for removed
  // ids; one-hot for greedy), and that draw's ids. Does not change the context. For tests.
  Tensor probabilities(const Tensor& logits, int64_t step, Tensor* ids = nullptr);

  const SamplingParams& params() const { return params_; }

 private:
  Tensor run(const Tensor& logits, int64_t step, const Tensor* probs);
  Context& ctx_;
  int64_t batch_, vocab_;
  SamplingParams params_;
  Tensor seen_;       // (B, V) u8: 1 where the id is in the row's context
  Tensor z_, e_;      // (B, V) f32 workspaces
  BuildOptions options_;  // cl/sample.cl's knobs
  int64_t local_;
};

// The work-group size sample_rows runs with on this device: 128, or the largest power of two
// the device allows below that.
int64_t sample_local_size(const Context& ctx);  // the work-group size above, as the device allows

}  // namespace magellano::generate
