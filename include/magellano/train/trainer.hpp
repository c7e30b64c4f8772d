// The training loop: `magellano train --config FILE [--device D] [--resume DIR]`.
//
// Each step: zero the packed gradients; for each of grad_accum micro-batches, draw (B, L+1)
// windows from the batcher, run the model's loss (cross-entropy + MoE aux losses) and backward;
// average the gradients over micro-batches; AdamW at the schedule's learning rate with
// global-norm clipping. The host reads the running loss and a few scalars only every
// `train.log_every` steps (and at evaluations and checkpoints), never a tensor in between.
//
// Before anything is allocated or written, a run that cannot fit the device is refused
// (train/device_fit.hpp), and so are --init-from inside checkpoint.dir and a checkpoint.dir that
// another run owns (train/run_folder.hpp: a run owns its folder; a resume continues the run that
// saved the checkpoint, cleans what a kill left and keeps one metrics record per step).
//
// Output: a progress line (step/total, loss, lr, tokens/s, elapsed, ETA, peak device memory),
// redrawn in place on a terminal and one line per interval otherwise; metrics as JSON lines in
// <checkpoint.dir>/metrics.jsonl; validation loss and perplexity every eval.every steps and at
// the end; checkpoints every checkpoint.every steps and at the end. A NaN or Inf loss or
// gradient norm stops training with a message naming the step.
//
// Data parallel (TrainOptions::ranks, N ranks): one batcher stream of N·B windows per micro-batch,
// identical on every rank; rank r trains on rows [r·B, (r+1)·B) of it, so the global batch is
// batch_size × grad_accum × N windows and 1 rank with batch N·B reads the same windows. After
// backward (or during it, with train.allreduce_overlap) the gradients are summed over ranks
// (train/gradient_sync.hpp) and read times
// 1 / (grad_accum · N): the mean over the global batch, as one rank would compute it. Clipping
// then sees identical gradients on every rank; loss scaling's skip is decided by all ranks
// together (Collective::all). The logged loss is the mean over ranks. Evaluation splits its
// chunks across ranks (train/evaluate.hpp). With train.zero_stage 1 each rank's AdamW updates its
// share of the parameters and train/zero_shard.hpp broadcasts them (bit-identical results);
// checkpoints gather the moments at rank 0. Rank 0 alone prints, writes metrics and checkpoints (with "data_parallel": {"ranks": N,
// "batch_per_rank": B} in trainer_state.json); before each checkpoint every rank compares its
// weights' hash with rank 0's and a mismatch stops the run, naming the ranks, before anything is
// written. A resume reads the checkpoint on every rank (multi-host: checkpoint.dir on a shared
// filesystem).
#pragma once
#include <filesystem>
#include <memory>
#include <optional>
#include <ostream>

#include "magellano/train/collective.hpp"
#include "magellano/train/config.hpp"
#include "magellano/train/evaluate.hpp"

namespace magellano::train {

struct TrainSummary {
  int64_t steps = 0;                  // optimizer steps done in total
  double final_loss = 0;              // mean training loss of the last logging interval
  std::optional<EvalResult> val;      // the final evaluation, when data.val is set
  std::filesystem::path checkpoint;   // the last checkpoint written
  double tokens_per_s = 0;            // this run's throughput
  uint64_t peak_device_bytes = 0;     // peak bytes held by tensors (the tracker's total)
  uint64_t peak_reserved_bytes = 0;   // peak bytes held on the device, buffer pool included
  double allreduce_seconds = 0;       // data parallel: time in the gradient exchange (0 alone)
};

struct TrainOptions {
  std::optional<std::filesystem::path> resume;  // a checkpoint directory to continue from
  // Start from these weights instead of a fresh initialisation (fine-tuning): a Magellano or
  // Hugging Face Mamba checkpoint directory whose parameters match the config's model, outside
  // checkpoint.dir. Stored absolute in trainer_state.json.
  std::optional<std::filesystem::path> init_from;
  std::ostream* out = nullptr;                  // progress (nullptr: silent; ranks other than 0: ignored)
  Collective* ranks = nullptr;                  // data-parallel ranks (nullptr: this process alone)
  bool terminal = false;                        // redraw the progress line in place
};

// Runs the whole configured training on ctx.
TrainSummary train(const Config& config, Context& ctx, const TrainOptions& options);

}  // namespace magellano::train
