#include "magellano/train/loss_scaler.hpp"

#include <cmath>

#include "magellano/optim/adamw.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::train {

LossScaler::LossScaler(double init, int64_t interval) : scale_(init), interval_(interval) {
  if (!(init >= 1.0) || interval < 1) throw Error("loss scaler: need init >= 1 and growth interval >= 1.");
}

bool LossScaler::update(bool finite) {
  if (!finite) {
    scale_ = std::max(1.0, scale_ * 0.5);
    clean_ = 0;
    ++skipped_;
    return false;
  }
  if (++clean_ >= interval_) {
    scale_ = std::min(scale_ * 2.0, 1.0e30);
    clean_ = 0;
  }
  return true;
}

nlohmann::json LossScaler::to_json() const {
  return {{"scale", scale_}, {"clean_steps", clean_}, {"skipped_steps", skipped_}};
}

void LossScaler::restore(const nlohmann::json& j) {
  scale_ = j.at("scale").get<double>();
  clean_ = j.at("clean_steps").get<int64_t>();
  skipped_ = j.at("skipped_steps").get<int64_t>();
}

bool grads_finite(optim::AdamW& opt) { return std::isfinite(opt.grad_norm().item()); }

}  // namespace magellano::train
