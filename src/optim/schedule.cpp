#include "magellano/optim/schedule.hpp"

#include <cmath>
#include <numbers>

namespace magellano::optim {

float LrSchedule::at(int64_t step) const {
  const int64_t s = step < 0 ? 0 : step;
  if (s < warmup_steps) return static_cast<float>(double(lr) * double(s + 1) / double(warmup_steps));
  if (s >= total_steps) return min_lr;
  const double q = double(s - warmup_steps) / double(total_steps - warmup_steps);
  return static_cast<float>(double(min_lr) +
                            (double(lr) - double(min_lr)) * 0.5 * (1.0 + std::cos(std::numbers::pi * q)));
}

}  // namespace magellano::optim
