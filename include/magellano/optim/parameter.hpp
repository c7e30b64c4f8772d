// What an optimizer updates: a named parameter tensor and its weight-decay group. Modules list
// theirs as these (nn::Module::parameters(); nn::Parameter is this type), so the optimizer needs
// nothing of nn.
#pragma once
#include <string>

#include "magellano/tensor/tensor.hpp"

namespace magellano::optim {

struct Parameter {
  std::string name;     // full name, e.g. "backbone.layers.0.mixer.A_log"
  Tensor tensor;        // f32 (or f16: fp16 storage), category parameters, requires_grad when trainable
  bool weight_decay = true;  // false for A_log, D, norm weights and biases
};

}  // namespace magellano::optim
