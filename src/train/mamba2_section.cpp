// The model.mamba2 section: its checks against model.dim and the nn::Mamba2Config it gives.
#include <algorithm>
#include <sstream>

#include "magellano/runtime/error.hpp"
#include "magellano/train/config.hpp"

namespace magellano::train {

void Mamba2Section::check(int64_t dim) const {
  const int64_t di = inner(dim);
  if (di % head_dim)
    throw Error("config: 'model.mamba2.head_dim' (" + std::to_string(head_dim) + ") must divide the Mamba2 inner "
                "width 'model.mamba2.expand' x 'model.dim' = " + std::to_string(expand) + " x " + std::to_string(dim) +
                " = " + std::to_string(di) + "; choose a divisor of it.");
  const int64_t heads = di / head_dim;
  if (heads % n_groups)
    throw Error("config: 'model.mamba2.n_groups' (" + std::to_string(n_groups) + ") must divide the " +
                std::to_string(heads) + " Mamba2 heads (inner width " + std::to_string(di) + " / head_dim " +
                std::to_string(head_dim) + "); choose a divisor of " + std::to_string(heads) + ".");
  if (time_step_min > time_step_max) {
    std::ostringstream os;
    os << "config: 'model.mamba2.time_step_min' (" << time_step_min << ") must be <= 'model.mamba2.time_step_max' ("
       << time_step_max << ").";
    throw Error(os.str());
  }
}

nn::Mamba2Config ModelConfig::mamba2_config() const {
  nn::Mamba2Config m;
  m.dim = dim;
  m.head_dim = mamba2.head_dim;
  m.n_groups = mamba2.n_groups;
  m.d_state = mamba2.d_state;
  m.d_conv = mamba2.d_conv;
  m.expand = mamba2.expand;
  m.chunk = static_cast<int>(mamba2.chunk_size);
  m.dt_lo = static_cast<float>(mamba2.dt_lo);
  m.dt_hi = static_cast<float>(mamba2.dt_hi);
  m.bidirectional_prefix = bidirectional_prefix;
  m.time_step_min = mamba2.time_step_min;
  m.time_step_max = mamba2.time_step_max;
  m.time_step_floor = mamba2.time_step_floor;
  m.bias = mamba2.bias;
  m.conv_bias = mamba2.conv_bias;
  m.norm_eps = static_cast<float>(norm_eps);
  m.num_layers = std::max<int64_t>(1, static_cast<int64_t>(pattern.size()));
  return m;
}

}  // namespace magellano::train
