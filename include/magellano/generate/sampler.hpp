// Turning logits into token ids on the device (cl/sample.cl): repetition penalty, temperature
// (0 = greedy), top-k, nucleus top-p, and a draw from a counter-based RNG. Nothing but the result
// leaves the device: sample() returns the (B) i32 ids as a device tensor; the caller decides
// whether to read them back.
//
// Two paths, the same results bit for bit (tests/ops/test_sample_fast.cpp):
// - full: one work-group per row runs every step over the whole row (any parameters).
// - top-k fast path (0 < top_k <= kSampleTopKMax, top_k < V, temperature > 0; the common case):
//   S work-groups per row each keep their segment's top-k candidates, then one group per row
//   finishes on the candidates alone; rows with massive ties are finished by the full path's
//   kernel, launched after it for the rows it flags (three launches, no host read). S is the
//   device's compute units on GPUs, 4 per compute unit on CPUs, at most the work-group size below.
//   MAGELLANO_SAMPLE_FAST=0 forces the full path (A/B measurements); MAGELLANO_SAMPLE_SEGMENTS=S
//   sets S.
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

// The largest top_k of the fast path (cl/sample.cl's TOPK_MAX).
inline constexpr int64_t kSampleTopKMax = 128;

// The fast path's shape, for tests and tuning; 0 = the default.
struct SampleFastShape {
  int64_t segments = 0;      // S; default: see above
  int64_t segment_keep = 0;  // the K of each segment's search; default top_k. Less is wrong: tests' broken variant
};

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
          const std::vector<std::vector<int32_t>>& context = {}, const SampleFastShape& shape = {});

  // logits: (B, V) f32 -> ids (B) i32 on the device; row r draws with counter (r, step). The
  // sampled ids join each row's context for the repetition penalty.
  Tensor sample(const Tensor& logits, int64_t step);
  // The filtered, renormalised distribution the draw of `step` uses ((B, V) f32, 0 for removed
  // ids; one-hot for greedy), and that draw's ids. Does not change the context. For tests.
  Tensor probabilities(const Tensor& logits, int64_t step, Tensor* ids = nullptr);

  const SamplingParams& params() const { return params_; }
  bool fast() const { return segments_ > 0; }  // the top-k fast path
  int64_t segments() const { return segments_; }  // its S; 0 on the full path

 private:
  Tensor run(const Tensor& logits, int64_t step, const Tensor* probs);
  Context& ctx_;
  int64_t batch_, vocab_;
  SamplingParams params_;
  Tensor seen_;       // (B, V) u8: 1 where the id is in the row's context
  Tensor z_, e_;      // (B, V) f32 workspaces
  BuildOptions options_;  // cl/sample.cl's knobs
  int64_t local_, seg_local_;
  int64_t segments_ = 0, segment_keep_ = 0;
  Tensor cand_id_, cand_key_;  // (B, S, 2 kSampleTopKMax) i32: the segments' candidates
  Tensor counts_;              // (B, S) i32
  Tensor unfinished_;          // (B) i32: 1 where the row needs the full path (massive ties)
};

// The work-group size of sample_rows and sample_merge on this device: 128 on CPUs, 512 on GPUs,
// or the largest power of two below that the device allows.
int64_t sample_local_size(const Context& ctx);

// Whether the fast path serves these parameters over a vocabulary of `vocab` ids on this
// process (MAGELLANO_SAMPLE_FAST: unset or 1 = where it applies, 0 = never; else an Error).
bool sample_fast_applies(const SamplingParams& p, int64_t vocab);

}  // namespace magellano::generate
