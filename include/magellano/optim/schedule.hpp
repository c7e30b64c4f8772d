// Learning-rate schedule: linear warmup, then cosine decay to a floor.
#pragma once
#include <cstdint>

namespace magellano::optim {

// at(s), for the optimizer step s = 0, 1, 2, ... (the s-th call of AdamW::step):
//   s < warmup_steps:                  lr * (s + 1) / warmup_steps
//   warmup_steps <= s < total_steps:   min_lr + (lr - min_lr) * (1 + cos(pi * q)) / 2,
//                                      q = (s - warmup_steps) / (total_steps - warmup_steps)
//   s >= total_steps:                  min_lr
// So the warmup reaches lr at s = warmup_steps - 1, the cosine starts at lr (s = warmup_steps)
// and ends at min_lr (s = total_steps). Computed in double, returned as float. The cases are
// tested in the order listed: warmup_steps = 0 skips the warmup, and with total_steps <=
// warmup_steps the rate drops to min_lr right after the warmup. Negative s counts as 0.
struct LrSchedule {
  float lr = 3e-4f;
  float min_lr = 3e-5f;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  float at(int64_t step) const;
};

}  // namespace magellano::optim
