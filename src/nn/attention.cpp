#include "magellano/nn/attention.hpp"

#include <algorithm>
#include <cmath>

#include "magellano/nn/decode_path.hpp"
#include "magellano/ops/attention.hpp"
#include "magellano/ops/attention_decode.hpp"
#include "magellano/ops/decode_gemv.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/rope.hpp"
#include "magellano/ops/shape.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::nn {

float AttentionConfig::score_scale() const {
  return static_cast<float>(scale > 0.0 ? scale : 1.0 / std::sqrt(static_cast<double>(width())));
}

void AttentionConfig::validate() const {
  if (dim < 1 || heads < 1 || kv_heads < 0 || head_dim < 0)
    throw Error("attention config: dim and heads must be positive, kv_heads and head_dim >= 0.");
  if (head_dim == 0 && dim % heads)
    throw Error("attention config: " + std::to_string(heads) + " heads do not divide the width " +
                std::to_string(dim) + "; choose a divisor of it or set head_dim.");
  if (heads % kv())
    throw Error("attention config: kv_heads " + std::to_string(kv()) + " does not divide the " +
                std::to_string(heads) + " query heads; choose a divisor of " + std::to_string(heads) + ".");
  if (width() % 8 || width() < 8 || width() > 256)
    throw Error("attention config: head width " + std::to_string(width()) +
                " is not one the attention kernels run (a multiple of 8 from 8 to 256).");
  if (rope_theta != 0.0 && !(rope_theta > 1.0 && std::isfinite(rope_theta)))
    throw Error("attention config: rope_theta must be a finite number > 1, or 0 for no rotary positions.");
  if (width() % 2 && rope_theta != 0.0)
    throw Error("attention config: rotary positions need an even head width, got " + std::to_string(width()) + ".");
  if (rope_2d && rope_theta == 0.0)
    throw Error("attention config: GLM's 2D positions rotate by two ids and need rotary attention (rope_theta > 0).");
  if (!(scale >= 0.0) || !std::isfinite(scale)) throw Error("attention config: scale must be a finite number >= 0.");
}

Attention::Attention(Context& ctx, const AttentionConfig& c, Init& init)
    : cfg((c.validate(), c)),
      q_proj(ctx, c.dim, c.heads * c.width(), false, init),
      k_proj(ctx, c.dim, c.kv() * c.width(), false, init),
      v_proj(ctx, c.dim, c.kv() * c.width(), false, init),
      o_proj(ctx, c.heads * c.width(), c.dim, false, init, 1.0f / std::sqrt(static_cast<float>(c.num_layers))) {}

Tensor Attention::forward(const Tensor& x, KvCache* cache, size_t index, int64_t row, const Tensor& prefix,
                          const Tensor& positions) const {
  if (x.shape().ndim() != 3 || x.size(2) != cfg.dim)
    throw Error("attention: input must be (B, L, " + std::to_string(cfg.dim) + "), got " + x.shape().str());
  const int64_t B = x.size(0), L = x.size(1), H = cfg.heads, KV = cfg.kv(), d = cfg.width();
  Tensor q = ops::reshape(q_proj.forward(x), Shape{B, L, H, d});
  Tensor k = ops::reshape(k_proj.forward(x), Shape{B, L, KV, d});
  const Tensor v = ops::reshape(v_proj.forward(x), Shape{B, L, KV, d});
  if (cfg.rope_2d) {
    const Tensor ids = positions.defined() ? positions : Tensor::from_host_i32(x.ctx(), Shape{B, L, 2}, [&] {
      std::vector<int32_t> v(2 * B * L, 0);  // ordinary text: (t, 0)
      for (int64_t i = 0; i < B * L; ++i) v[2 * i] = static_cast<int32_t>(i % L);
      return v;
    }());
    q = ops::rope_2d(q, ids, cfg.rope_theta);
    k = ops::rope_2d(k, ids, cfg.rope_theta);
  } else if (cfg.rope_theta != 0.0) {
    q = ops::rope(q, {cfg.rope_theta});
    k = ops::rope(k, {cfg.rope_theta});
  }
  if (cache) {
    autograd::NoGradScope no_grad;
    const KvPools& p = cache->pools(index);
    ops::kv_cache_write(p.k, p.v, k, v, cache->table(row, B), cache->positions(row, B));
  }
  ops::AttentionOptions o;
  o.scale = cfg.score_scale();
  o.prefix = prefix;
  const Tensor y = ops::attention(q, k, v, o);  // (B, L, H, d)
  return o_proj.forward(ops::reshape(y, Shape{B, L, H * d}));
}

Tensor Attention::step(const Tensor& x_t, KvCache& cache, size_t index, const Tensor& ids_2d) const {
  autograd::NoGradScope no_grad;
  const Tensor y = step_projected(x_t, cache, index, std::nullopt, ids_2d);
  return o_proj.forward(y);
}

Tensor Attention::step_projected(const Tensor& x_t, KvCache& cache, size_t index,
                                 const std::optional<ops::DecodeGemvParts>& fused, const Tensor& ids_2d) const {
  if (x_t.shape().ndim() != 2 || x_t.size(1) != cfg.dim)
    throw Error("attention: a step's input must be (B, " + std::to_string(cfg.dim) + "), got " + x_t.shape().str());
  const int64_t B = x_t.size(0), H = cfg.heads, KV = cfg.kv(), d = cfg.width();
  if (B != cache.batch()) throw Error("attention: the step's batch differs from the cache's.");
  auto project = [&](const Linear& l) { return fused ? decode_gemv(l, x_t, *fused) : l.forward(x_t); };
  Tensor q = project(q_proj).view(Shape{B, 1, H, d});
  Tensor k = project(k_proj).view(Shape{B, 1, KV, d});
  const Tensor v = project(v_proj).view(Shape{B, 1, KV, d});
  const Tensor pos = cache.positions(0, B), table = cache.table(0, B);
  if (cfg.rope_2d && ids_2d.defined()) {  // this position's GLM ids (a blank's tokens)
    if (ids_2d.dtype() != DType::i32 || ids_2d.shape() != Shape{B, 2})
      throw Error("attention: a step's 2D ids must be (" + std::to_string(B) + ", 2) i32, got " + ids_2d.shape().str() + ".");
    const Tensor ids = ids_2d.view(Shape{B, 1, 2});
    q = ops::rope_2d(q, ids, cfg.rope_theta);
    k = ops::rope_2d(k, ids, cfg.rope_theta);
  } else if (cfg.rope_2d) {  // ordinary text: ids (position, 0)
    q = ops::rope_2d_at(q, pos, cfg.rope_theta);
    k = ops::rope_2d_at(k, pos, cfg.rope_theta);
  } else if (cfg.rope_theta != 0.0) {  // each row at its own position (an ended row's -1 is never read)
    q = ops::rope_at(q, pos, cfg.rope_theta);
    k = ops::rope_at(k, pos, cfg.rope_theta);
  }
  const KvPools& p = cache.pools(index);
  ops::kv_cache_write(p.k, p.v, k, v, table, pos);
  ops::AttentionDecodeOptions o;
  o.scale = cfg.score_scale();
  o.max_length = std::max<int64_t>(1, cache.max_length_after());
  const Tensor y = ops::attention_decode(q.view(Shape{B, H, d}), p.k, p.v, table, cache.lengths_after(0, B), o);
  return y.view(Shape{B, H * d});
}

void Attention::collect(const std::string& p, std::vector<Parameter>& out) const {
  q_proj.collect(p + "q_proj.", out);
  k_proj.collect(p + "k_proj.", out);
  v_proj.collect(p + "v_proj.", out);
  o_proj.collect(p + "o_proj.", out);
}

void Attention::collect_linears(const std::string& p, std::vector<NamedLinear>& out) {
  q_proj.collect_linears(p + "q_proj.", out);
  k_proj.collect_linears(p + "k_proj.", out);
  v_proj.collect_linears(p + "v_proj.", out);
  o_proj.collect_linears(p + "o_proj.", out);
}

AttentionBlock::AttentionBlock(Context& ctx, const AttentionConfig& c, Init& init)
    : norm(ctx, c.dim, c.norm_eps), mixer(ctx, c, init) {}

Tensor AttentionBlock::forward(const Tensor& x, KvCache* cache, size_t index, int64_t row,
                               const Tensor& prefix, const Tensor& positions) const {
  return ops::add(x, mixer.forward(norm.forward(x), cache, index, row, prefix, positions), residual_scale);
}

bool AttentionBlock::fused_step(const Tensor& x_t) const {
  const Attention& a = mixer;
  return fused_decode() && x_t.shape().ndim() == 2 && x_t.size(0) <= ops::kDecodeGemvRows &&
         decode_linear(a.q_proj) && decode_linear(a.k_proj) && decode_linear(a.v_proj) && decode_linear(a.o_proj) &&
         norm.weight.dtype() == DType::f32;
}

Tensor AttentionBlock::step(const Tensor& x_t, KvCache& cache, size_t index, const Tensor& ids_2d) const {
  autograd::NoGradScope no_grad;
  if (!fused_step(x_t)) return ops::add(x_t, mixer.step(norm.forward(x_t), cache, index, ids_2d), residual_scale);
  // The block's RMSNorm fused into each of q, k, v's products, the residual into o_proj's.
  ops::DecodeGemvParts in;
  in.norm = norm.weight, in.eps = norm.eps;
  const Tensor y = mixer.step_projected(x_t, cache, index, in, ids_2d);  // (B, nH d)
  ops::DecodeGemvParts out;
  out.residual = x_t, out.scale = residual_scale;
  return decode_gemv(mixer.o_proj, y, out);
}

void AttentionBlock::collect(const std::string& p, std::vector<Parameter>& out) const {
  norm.collect(p + "norm.", out);
  mixer.collect(p + "mixer.", out);
}

void AttentionBlock::collect_linears(const std::string& p, std::vector<NamedLinear>& out) {
  mixer.collect_linears(p + "mixer.", out);
}

}  // namespace magellano::nn
