// Dynamic loss scaling (as torch.cuda.amp.GradScaler): the backward starts from `scale`
// instead of 1, so small gradients survive fp16 storage; the gradients are divided by it
// before the optimizer step.
//   start: scale = init (65536)
//   a step whose gradients are all finite: applied; after `growth_interval` (2000) such steps
//     in a row, scale *= 2
//   a step with an Inf or NaN gradient: skipped (no update), scale *= 0.5, the count restarts
// The check costs one scalar read per optimizer step: the global gradient norm, computed on
// the device, is finite exactly when every gradient element is.
#pragma once
#include <cstdint>

#include <nlohmann/json.hpp>

namespace magellano::optim {
class AdamW;
}

namespace magellano::train {

class LossScaler {
 public:
  explicit LossScaler(double init = 65536.0, int64_t growth_interval = 2000);
  float scale() const { return static_cast<float>(scale_); }
  // Records one step's outcome; returns true when the step must be applied.
  bool update(bool grads_finite);
  int64_t clean_steps() const { return clean_; }   // finite steps since the last change
  int64_t skipped_steps() const { return skipped_; }
  nlohmann::json to_json() const;
  void restore(const nlohmann::json& j);

 private:
  double scale_;
  int64_t interval_, clean_ = 0, skipped_ = 0;
};

// Whether every packed gradient of `opt` is finite (one scalar read).
bool grads_finite(optim::AdamW& opt);

}  // namespace magellano::train
