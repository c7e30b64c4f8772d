// Whether a run fits its device, decided from the config before anything is allocated: `train`,
// `eval` and `generate` refuse at once, in one line saying by how much and what to change,
// instead of allocating until the device (on PoCL: the machine's RAM) runs out.
//
// Only what the run allocates for certain is compared with the device's global memory:
//   training   weights + gradients + AdamW moments (model_size.hpp's figures, which equal the
//              memory tracker's up to the optimizer pack's 64-element alignment) + the logits,
//              one (B·L, V) f32 tensor
//   inference  the weights as stored (fp32, fp16, NF4 or int4, adapters) + the logits of one batch
// The rest of `info --config`'s estimate (the layers' activations and workspace) is left out: on
// PoCL the whole estimate came out between 0.59 and 1.7 times the tracker's peak (small models
// with LoRA, QLoRA, fp16 parameters or checkpointing), too loose to refuse on. So the margin is
// the whole activation estimate: over 45 such configs the tracker's peak was at least 1.17 times
// the certain part (typically twice: the logits' gradient, the activations), so a run that fits
// is not refused, and one that passes but still does not fit stops at the allocation that fails,
// with the allocator's message, as before.
// Separately, the largest single tensor must fit the device's largest allocation
// (CL_DEVICE_MAX_MEM_ALLOC_SIZE): the largest weight matrix at 4 bytes per element (an fp16 or
// NF4 one is widened to f32 for its products), or the logits.
// Sizes are added in double precision, so absurd configs cannot wrap around.
#pragma once
#include <string>
#include <vector>

#include "magellano/runtime/device.hpp"
#include "magellano/train/config.hpp"

namespace magellano::train {

// One allocation the run makes for certain, and what shrinks it (the end of the error line).
struct Demand {
  std::string what;    // "weights", "logits (B·L 1024 x V 50257, f32)", ...
  double bytes = 0;
  std::string remedy;  // "Use a smaller train.batch_size or train.seq_len"
};

struct DeviceDemand {
  std::vector<Demand> parts;   // held at the same time
  Demand largest;              // the largest single tensor
  double estimate_total = 0;   // `magellano info --config`'s total (training), else 0
  double total() const;
};

// A training run of `config` (train.batch_size x train.seq_len, LoRA, fp16, as configured), as
// one rank of `ranks` (with train.zero_stage 1 its share of the moments; estimate_rank_memory).
DeviceDemand training_demand(const Config& config, int64_t ranks = 1);
// The model of `config` loaded for inference, running `rows` x `cols` tokens at once (0 x 0: the
// weights alone). `batch_remedy` says how to run fewer tokens (e.g. "Use a smaller --batch").
DeviceDemand inference_demand(const Config& config, int64_t rows, int64_t cols,
                              const std::string& batch_remedy);

// Throws Error unless `demand` fits `device`: "<command>: this needs at least X on <device> (the
// parts), Y more than the device's Z. <the remedy that frees the most>." (on PoCL with
// POCL_MEMORY_LIMIT), or "<command>: the <largest> takes X in one buffer, ...".
void require_fit(const DeviceDemand& demand, const DeviceInfo& device, const std::string& command);

}  // namespace magellano::train
