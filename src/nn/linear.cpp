#include "magellano/nn/linear.hpp"

#include <cmath>

#include "magellano/ops/dropout.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/int4.hpp"
#include "magellano/ops/matmul.hpp"
#include "magellano/runtime/error.hpp"
#include "nf4_bridge.hpp"

namespace magellano::nn {

Linear::Linear(Context& ctx, int64_t in, int64_t out, bool has_bias, Init& init, float init_scale)
    : in_(in), out_(out) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  const double wbound = init_scale == 1.0f ? bound : init_scale / std::sqrt(static_cast<double>(in));
  weight = make_parameter(ctx, Shape{out, in}, init.uniform(out * in, -wbound, wbound));
  if (has_bias) bias = make_parameter(ctx, Shape{out}, init.uniform(out, -bound, bound));
}

Tensor Linear::project(const Tensor& x) const {
  Tensor y;
  if (storage_ == WeightStorage::nf4) y = nf4_project(x, *nf4);
  else if (storage_ == WeightStorage::int4) y = ops::int4_linear(x, *int4);
  else y = ops::linear(x, weight);  // f32 or f16
  if (!lora) return y;
  const LoRAAdapter& a = *lora;
  Tensor xd = x;
  if (a.dropout > 0.0f && training())
    xd = ops::dropout(x, a.dropout, a.mask_seed());
  Tensor low = ops::linear(ops::linear(xd, a.A), a.B);  // (..., r) then (..., out)
  return ops::add(y, low, a.scaling);
}

Tensor Linear::forward(const Tensor& x) const {
  if ((storage_ == WeightStorage::f32 || storage_ == WeightStorage::f16) && !lora) return ops::linear(x, weight, bias);
  Tensor y = project(x);
  return bias.defined() ? ops::add(y, bias) : y;
}

void Linear::set_weight(const std::vector<float>& values) {
  if (static_cast<int64_t>(values.size()) != out_ * in_)
    throw Error("Linear::set_weight: " + std::to_string(values.size()) + " values for a (" +
                std::to_string(out_) + ", " + std::to_string(in_) + ") weight.");
  if (storage_ == WeightStorage::f32) {
    weight.copy_from_host(values.data(), values.size() * sizeof(float));
    return;
  }
  Context& ctx = storage_ == WeightStorage::f16 ? weight.ctx() : storage_ == WeightStorage::int4 ? int4->ctx() : nf4_context(*nf4);
  set_weight(Tensor::from_host(ctx, Shape{out_, in_}, values, DType::f32, MemCategory::scratch));
}

void Linear::set_weight(const Tensor& values) {
  if (values.shape() != Shape{out_, in_} || values.dtype() != DType::f32)
    throw Error("Linear::set_weight: need an (" + std::to_string(out_) + ", " + std::to_string(in_) +
                ") f32 tensor, got " + values.shape().str() + " " + to_string(values.dtype()) + ".");
  autograd::NoGradScope no_grad;
  switch (storage_) {
    case WeightStorage::f32: ops::copy_into(values, weight); break;
    case WeightStorage::f16: {
      Tensor w16 = ops::cast(values, DType::f16);
      ops::copy_into(w16, weight);
      break;
    }
    case WeightStorage::nf4: *nf4 = nf4_quantize(values); break;
    case WeightStorage::int4: *int4 = ops::quantize_int4(values, int4->group_size); break;
  }
}

void Linear::freeze(WeightStorage to, int64_t int4_group) {
  if (bias.defined()) bias.set_requires_grad(false);
  if (storage_ != WeightStorage::f32 && to != storage_)
    throw Error("Linear::freeze: a weight stored as " + std::string(to_string(storage_)) +
                " cannot be converted to " + to_string(to) + ".");
  if (weight.defined()) weight.set_requires_grad(false);
  convert(to, int4_group);
}

void Linear::set_int4(ops::Int4Weight q) {
  if (storage_ != WeightStorage::int4)
    throw Error(std::string("Linear::set_int4: the weight is stored as ") + to_string(storage_) + ", not int4.");
  if (q.shape != Shape{out_, in_})
    throw Error("Linear::set_int4: an int4 weight " + q.shape.str() + " for a (" + std::to_string(out_) + ", " +
                std::to_string(in_) + ") Linear.");
  *int4 = std::move(q);
}

void Linear::store_half() {
  if (storage_ != WeightStorage::f32)
    throw Error(std::string("Linear::store_half: the weight is already stored as ") + to_string(storage_) + ".");
  convert(WeightStorage::f16);
}

void Linear::convert(WeightStorage to, int64_t int4_group) {
  if (to == storage_) return;
  autograd::NoGradScope no_grad;
  if (to == WeightStorage::f16) {
    weight = half_parameter(weight);
  } else if (to == WeightStorage::int4) {
    if (!ops::Int4Weight::fits(in_, int4_group)) return;  // stays f32, as the file format keeps it dense
    int4 = std::make_shared<ops::Int4Weight>(ops::quantize_int4(weight, int4_group));
    weight = Tensor();
  } else {
    nf4 = std::make_shared<ops::NF4Weight>(nf4_quantize(weight));
    weight = Tensor();
  }
  storage_ = to;
}

void Linear::add_lora(int64_t rank, double alpha, double dropout, Init& init, uint64_t seed) {
  if (rank < 1) throw Error("LoRA: rank must be >= 1.");
  Context& ctx = bias.defined() ? bias.ctx() : weight.defined() ? weight.ctx() : int4 ? int4->ctx() : nf4_context(*nf4);
  LoRAAdapter a;
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_));  // kaiming_uniform_(a=√5)
  a.A = make_parameter(ctx, Shape{rank, in_}, init.uniform(rank * in_, -bound, bound));
  a.B = make_parameter(ctx, Shape{out_, rank}, std::vector<float>(out_ * rank, 0.0f));
  a.scaling = static_cast<float>(alpha / static_cast<double>(rank));
  a.dropout = static_cast<float>(dropout);
  a.seed = seed;
  lora = a;
}

Tensor Linear::dense_weight() const {
  autograd::NoGradScope no_grad;
  switch (storage_) {
    case WeightStorage::f32: return weight;
    case WeightStorage::f16: return ops::cast(weight, DType::f32);
    case WeightStorage::nf4: return nf4_dense(*nf4);
    case WeightStorage::int4: return ops::dequantize_int4(*int4);
  }
  return Tensor();
}

void Linear::collect(const std::string& prefix, std::vector<Parameter>& out) const {
  if (weight.defined()) out.push_back({prefix + "weight", weight, true});
  if (bias.defined()) out.push_back({prefix + "bias", bias, false});
}

void Linear::collect_lora(const std::string& prefix, std::vector<Parameter>& out) const {
  if (!lora) return;
  out.push_back({prefix + "lora_A.weight", lora->A, true});
  out.push_back({prefix + "lora_B.weight", lora->B, true});
}

void Linear::collect_linears(const std::string& prefix, std::vector<NamedLinear>& out) {
  std::string path = prefix;
  if (!path.empty() && path.back() == '.') path.pop_back();
  const size_t dot = path.rfind('.');
  out.push_back({path, dot == std::string::npos ? path : path.substr(dot + 1), this});
}

}  // namespace magellano::nn
