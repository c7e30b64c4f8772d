// Linear (PyTorch layout), optionally with a LoRA adapter.
#pragma once
#include <memory>
#include <optional>

#include "magellano/nn/lora.hpp"
#include "magellano/nn/module.hpp"
#include "magellano/nn/training_mode.hpp"

namespace magellano::ops {
struct NF4Weight;
struct Int4Weight;
}

namespace magellano::nn {

// The trainable low-rank pair of a LoRA-wrapped Linear (see nn/lora.hpp).
struct LoRAAdapter {
  Tensor A;             // (rank, in) f32, trainable
  Tensor B;             // (out, rank) f32, trainable, zeros at init
  float scaling = 1.0f;  // alpha / rank
  float dropout = 0.0f;
  uint64_t seed = 0;     // this layer's dropout stream
  // The dropout seed of the current forward: seed mixed with nn::dropout_generation().
  uint64_t mask_seed() const { return seed ^ (dropout_generation() * 0x9E3779B97F4A7C15ULL); }
};

// y = x · Wᵀ (+ b)  [+ (α/r) · B · A · dropout(x) with a LoRA adapter].
// weight: (out, in) as PyTorch stores it; bias: (out) or none.
// Default init as torch.nn.Linear: U(-s/sqrt(in), s/sqrt(in)) for weight (s = init_scale, 1 by
// default) and U(±1/sqrt(in)) for bias.
// Storage of the weight: f32 or f16, trainable or frozen (an f16 `weight` is widened to fp32
// for each product, ops::half_linear; a trainable one gets an fp16 gradient), or frozen NF4
// (`nf4` holds it, `weight` is undefined) or int4 (`int4` holds it; ops::int4_linear).
class Linear : public Module {
 public:
  Linear(Context& ctx, int64_t in, int64_t out, bool bias, Init& init, float init_scale = 1.0f);
  Tensor forward(const Tensor& x) const;  // x: (..., in) -> (..., out)
  Tensor project(const Tensor& x) const;  // forward without the bias (Mamba fuses dt_proj's)
  // The base weight's values from the host ((out·in) floats, row-major), in its storage.
  void set_weight(const std::vector<float>& values);
  // The same from an (out, in) f32 device tensor (copied; quantized for NF4).
  void set_weight(const Tensor& values);
  // Freezes weight and bias (no gradient) and converts the weight to `storage`; the f32 copy
  // is released. int4: groups of int4_group (an input width it does not divide stays f32).
  void freeze(WeightStorage storage, int64_t int4_group = 128);
  // Replaces an int4 weight (storage int4) by q, e.g. read from a file (any group size).
  void set_int4(ops::Int4Weight q);
  // Stores an f32 weight as fp16 (rounded to nearest) and keeps it trainable: fp16 parameter
  // storage (nn::ModelSpec::weight_dtype). The bias stays f32.
  void store_half();
  // Attaches a LoRA adapter: A ~ U(±1/sqrt(in)) drawn from `init`, B = 0.
  void add_lora(int64_t rank, double alpha, double dropout, Init& init, uint64_t dropout_seed);
  // The base weight as (out, in) f32: `weight` itself when stored f32, else a widened /
  // dequantized copy.
  Tensor dense_weight() const;
  WeightStorage storage() const { return storage_; }
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }
  // Base parameters: "weight" (not for NF4 / int4, whose packed forms live in `nf4` / `int4`) and "bias".
  void collect(const std::string& prefix, std::vector<Parameter>& out) const override;
  // "lora_A.weight" and "lora_B.weight" (PEFT's names), when an adapter is attached.
  void collect_lora(const std::string& prefix, std::vector<Parameter>& out) const;
  void collect_linears(const std::string& prefix, std::vector<NamedLinear>& out) override;

  Tensor weight, bias;
  std::shared_ptr<ops::NF4Weight> nf4;    // the frozen NF4 weight (storage nf4 only)
  std::shared_ptr<ops::Int4Weight> int4;  // the frozen int4 weight (storage int4 only)
  std::optional<LoRAAdapter> lora;

 private:
  void convert(WeightStorage to, int64_t int4_group = 128);  // the weight's storage, same requires_grad
  int64_t in_, out_;
  WeightStorage storage_ = WeightStorage::f32;
};

}  // namespace magellano::nn
