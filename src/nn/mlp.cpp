#include "magellano/nn/mlp.hpp"

#include <string>

#include "magellano/autograd/tape.hpp"
#include "magellano/nn/decode_path.hpp"
#include "magellano/ops/activation.hpp"
#include "magellano/ops/decode_gemv.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/expert_mlp.hpp"
#include "magellano/ops/index.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::nn {

Mlp::Mlp(Context& ctx, const MlpConfig& c, Init& init, float w2_scale, std::string kind)
    : config(c), lora_kind(std::move(kind)) {
  if (c.dim < 1 || c.hidden < 1)
    throw Error("Mlp: need dim and hidden >= 1 (got dim " + std::to_string(c.dim) + ", hidden " +
                std::to_string(c.hidden) + ").");
  w1 = std::make_shared<Linear>(ctx, c.dim, c.hidden, false, init);
  w2 = std::make_shared<Linear>(ctx, c.hidden, c.dim, false, init, w2_scale);
  if (c.swiglu) w3 = std::make_shared<Linear>(ctx, c.dim, c.hidden, false, init);
}

bool Mlp::grouped(const std::vector<const Mlp*>& mlps) {
  const WeightStorage first = mlps.front()->w1->storage();
  for (const Mlp* m : mlps)
    for (const Linear* l : {m->w1.get(), m->w2.get(), m->w3.get()})
      if (l && (l->lora || l->storage() == WeightStorage::nf4 || l->storage() == WeightStorage::int4 || l->storage() != first)) return false;
  return true;
}

Tensor Mlp::forward(const Tensor& x) const {
  const int64_t d = config.dim;
  if (x.shape().ndim() < 1 || x.shape().last() != d)
    throw Error("Mlp: x must be (..., " + std::to_string(d) + "), got " + x.shape().str() + ".");
  if (!grouped({this})) return forward_linears(x);
  const int64_t n = x.shape().rows();
  const Tensor y = ops::expert_mlp(ops::reshape(x, Shape{n, d}), {0, n}, {w1->weight}, {w2->weight},
                                   w3 ? std::vector<Tensor>{w3->weight} : std::vector<Tensor>{},
                                   config.swiglu ? ops::ExpertActivation::swiglu : ops::ExpertActivation::gelu);
  return ops::reshape(y, x.shape());  // (N, D) -> x's shape
}

Tensor Mlp::forward_linears(const Tensor& x) const {
  const Tensor h1 = w1->forward(x);  // (..., F)
  const Tensor act = config.swiglu ? ops::mul(ops::silu(h1), w3->forward(x)) : ops::gelu(h1);
  return w2->forward(act);  // (..., D)
}

void Mlp::collect(const std::string& prefix, std::vector<Parameter>& out) const {
  w1->collect(prefix + "w1.", out);
  w2->collect(prefix + "w2.", out);
  if (w3) w3->collect(prefix + "w3.", out);
}

void Mlp::collect_linears(const std::string& prefix, std::vector<NamedLinear>& out) {
  out.push_back({prefix + "w1", lora_kind, w1.get()});
  out.push_back({prefix + "w2", lora_kind, w2.get()});
  if (w3) out.push_back({prefix + "w3", lora_kind, w3.get()});
}

MlpBlock::MlpBlock(Context& ctx, const MlpConfig& config, Init& init, float w2_scale, float norm_eps)
    : norm(ctx, config.dim, norm_eps), mlp(ctx, config, init, w2_scale, "mlp") {}

Tensor MlpBlock::forward(const Tensor& x) const { return ops::add(x, mlp.forward(norm.forward(x)), residual_scale); }

bool MlpBlock::fused_step(const Tensor& x_t) const {
  const Mlp& m = mlp;
  return fused_decode() && x_t.shape().ndim() == 2 && x_t.size(0) <= ops::kDecodeGemvRows && decode_linear(*m.w1) &&
         decode_linear(*m.w2) && (!m.w3 || decode_linear(*m.w3)) && norm.weight.dtype() == DType::f32;
}

Tensor MlpBlock::step(const Tensor& x_t) const {
  autograd::NoGradScope no_grad;
  if (!fused_step(x_t)) return forward(x_t);
  const Mlp& m = mlp;
  ops::DecodeGemvParts in;  // the block's RMSNorm fused into w1's and w3's products
  in.norm = norm.weight, in.eps = norm.eps;
  const Tensor h1 = decode_gemv(*m.w1, x_t, in);  // (B, F)
  const Tensor act = m.w3 ? ops::mul(ops::silu(h1), decode_gemv(*m.w3, x_t, in)) : ops::gelu(h1);
  ops::DecodeGemvParts out;  // w2 with the residual
  out.residual = x_t, out.scale = residual_scale;
  return decode_gemv(*m.w2, act, out);
}

void MlpBlock::collect(const std::string& prefix, std::vector<Parameter>& out) const {
  norm.collect(prefix + "norm.", out);
  mlp.collect(prefix + "mlp.", out);
}

void MlpBlock::collect_linears(const std::string& prefix, std::vector<NamedLinear>& out) {
  mlp.collect_linears(prefix + "mlp.", out);
}

}  // namespace magellano::nn
