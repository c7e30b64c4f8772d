// Layers own named parameters. Names follow Hugging Face transformers (Mamba) and Mixtral
// (MoE) so other tools can read our weights: a layer lists its parameters under a prefix,
// e.g. "backbone.layers.3.mixer." + "in_proj.weight".
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "magellano/optim/parameter.hpp"
#include "magellano/tensor/tensor.hpp"

namespace magellano::nn {

// A named parameter tensor, as the optimizer takes it (defined below nn, in optim/parameter.hpp).
using Parameter = optim::Parameter;

class Linear;

// A Linear layer under its module path ("backbone.layers.0.mixer.in_proj") and its LoRA target
// kind ("in_proj", "x_proj", "dt_proj", "out_proj", "gate", "experts", "shared_expert" or "mlp").
struct NamedLinear {
  std::string path;
  std::string kind;
  Linear* linear = nullptr;
};

class Module {
 public:
  virtual ~Module() = default;
  // Appends every Linear layer under `prefix` (as collect() names them, without ".weight").
  virtual void collect_linears(const std::string& prefix, std::vector<NamedLinear>& out) {
    (void)prefix, (void)out;
  }
  std::vector<NamedLinear> linears(const std::string& prefix = "") {
    std::vector<NamedLinear> l;
    collect_linears(prefix, l);
    return l;
  }
  // Appends every parameter with its name under `prefix` (which ends in '.' or is empty).
  virtual void collect(const std::string& prefix, std::vector<Parameter>& out) const = 0;
  std::vector<Parameter> parameters(const std::string& prefix = "") const {
    std::vector<Parameter> p;
    collect(prefix, p);
    return p;
  }
  int64_t num_parameters() const {
    int64_t n = 0;
    for (const auto& p : parameters()) n += p.tensor.numel();
    return n;
  }
};

// Deterministic initialisation: every draw comes from one seeded generator, on the host, in
// the order layers are built, so the same seed gives the same weights on any device.
class Init {
 public:
  explicit Init(uint64_t seed) : rng_(seed) {}
  std::vector<float> normal(int64_t n, double std);
  std::vector<float> uniform(int64_t n, double lo, double hi);
  std::mt19937_64& rng() { return rng_; }

 private:
  std::mt19937_64 rng_;
};

// A trainable parameter tensor from host values.
Tensor make_parameter(Context& ctx, const Shape& shape, const std::vector<float>& values);
// An fp16 copy of parameter w (rounded to nearest even), trainable when w is; w itself when it
// is already f16. The caller replaces its handle, so w's f32 buffer is released.
Tensor half_parameter(const Tensor& w);

}  // namespace magellano::nn
