#include "magellano/nn/model.hpp"

#include <cmath>

#include "magellano/ops/cross_entropy.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/index.hpp"
#include "magellano/ops/matmul.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::nn {
namespace {

template <class... F>
struct Visit : F... {
  using F::operator()...;
};
template <class... F>
Visit(F...) -> Visit<F...>;

}  // namespace

Model::Model(Context& ctx, const ModelSpec& spec, uint64_t seed)
    : spec_(spec),
      init_(seed),
      embedding_(ctx, std::max<int64_t>(spec.vocab_size, 1), std::max<int64_t>(spec.dim, 1), init_),
      norm_f_(ctx, std::max<int64_t>(spec.dim, 1), spec.norm_eps) {
  if (spec.vocab_size < 2 || spec.dim < 1 || spec.layers.empty())
    throw Error("model: vocab_size, dim and a non-empty layer pattern are required.");
  Init& init = init_;
  spec_.mamba.dim = spec.dim;
  spec_.mamba.num_layers = static_cast<int64_t>(spec.layers.size());
  spec_.moe.dim = spec.dim;
  const float w2_scale = 1.0f / std::sqrt(static_cast<float>(spec.layers.size()));
  for (char kind : spec.layers) {
    if (kind == 'M')
      blocks_.emplace_back(std::make_unique<MambaBlock>(ctx, spec_.mamba, init));
    else if (kind == 'E')
      blocks_.emplace_back(std::make_unique<MoEBlock>(ctx, spec_.moe, init, w2_scale, spec.norm_eps));
    else
      throw Error(std::string("model: unknown block '") + kind + "' in the layer pattern (use M or E).");
  }
  if (!spec.tie_embeddings) lm_head_ = std::make_unique<Linear>(ctx, spec.dim, spec.vocab_size, false, init);
}

Tensor Model::head(const Tensor& h) const {
  Tensor x = norm_f_.forward(h);
  return lm_head_ ? lm_head_->forward(x) : ops::linear(x, embedding_.weight);
}

ModelOutput Model::forward(const Tensor& ids, DecodeState* state) const {
  ModelOutput out;
  out.logits = head(body(ids, state, out));
  return out;
}

Tensor Model::prefill(const Tensor& ids, DecodeState& state) const {
  autograd::NoGradScope no_grad;
  ModelOutput unused;
  const Tensor h = body(ids, &state, unused);  // (B, L, D)
  const int64_t B = ids.size(0), L = ids.size(1), D = spec_.dim;
  std::vector<int32_t> last(B);
  for (int64_t b = 0; b < B; ++b) last[b] = static_cast<int32_t>(b * L + L - 1);
  const Tensor idx = Tensor::from_host_i32(h.ctx(), Shape{B}, last);
  return head(ops::gather_rows(h.view(Shape{B * L, D}), idx));  // (B, V)
}

Tensor Model::body(const Tensor& ids, DecodeState* state, ModelOutput& out) const {
  if (ids.dtype() != DType::i32 || ids.shape().ndim() != 2)
    throw Error("model: ids must be (B, L) i32, got " + ids.shape().str() + " " + to_string(ids.dtype()));
  if (state) state->mamba.assign(blocks_.size(), {});
  Tensor h = embedding_.forward(ids);  // (B, L, D), the fp32 residual stream
  for (size_t i = 0; i < blocks_.size(); ++i) {
    std::visit(Visit{[&](const std::unique_ptr<MambaBlock>& b) {
                       h = b->forward(h, state ? &state->mamba[i] : nullptr);
                     },
                     [&](const std::unique_ptr<MoEBlock>& b) {
                       MoEOutput r = b->forward(h);
                       h = r.out;
                       out.aux_loss = out.aux_loss.defined() ? ops::add(out.aux_loss, r.aux_loss) : r.aux_loss;
                       out.expert_counts.push_back(r.expert_counts);
                     }},
               blocks_[i]);
  }
  return h;
}

LossOutput Model::loss(const Tensor& ids, const Tensor& targets) const {
  if (targets.shape() != ids.shape())
    throw Error("model: targets " + targets.shape().str() + " must match ids " + ids.shape().str());
  ModelOutput f = forward(ids);
  const int64_t n = ids.numel();
  LossOutput out;
  out.ce = ops::cross_entropy(ops::reshape(f.logits, Shape{n, spec_.vocab_size}), targets.view(Shape{n}));
  out.aux = f.aux_loss;
  out.loss = out.aux.defined() ? ops::add(out.ce, out.aux) : out.ce;
  out.expert_counts = std::move(f.expert_counts);
  return out;
}

DecodeState Model::empty_state(int64_t batch) const {
  DecodeState s;
  for (const auto& b : blocks_) {
    if (auto* m = std::get_if<std::unique_ptr<MambaBlock>>(&b)) s.mamba.push_back((*m)->mixer.empty_state(batch));
    else s.mamba.push_back({});
  }
  return s;
}

Tensor Model::step(const Tensor& ids_t, DecodeState& state) const {
  autograd::NoGradScope no_grad;
  if (ids_t.dtype() != DType::i32 || ids_t.shape().ndim() != 1)
    throw Error("model: step ids must be (B) i32, got " + ids_t.shape().str());
  if (state.mamba.size() != blocks_.size()) throw Error("model: the decode state belongs to another model.");
  Tensor h = embedding_.forward(ids_t);  // (B, D)
  for (size_t i = 0; i < blocks_.size(); ++i) {
    std::visit(Visit{[&](const std::unique_ptr<MambaBlock>& b) { h = b->step(h, state.mamba[i]); },
                     [&](const std::unique_ptr<MoEBlock>& b) { h = b->forward(h).out; }},
               blocks_[i]);
  }
  return head(h);
}

void Model::collect(const std::string& prefix, std::vector<Parameter>& out) const {
  embedding_.collect(prefix + "backbone.embeddings.", out);
  for (size_t i = 0; i < blocks_.size(); ++i) {
    const std::string p = prefix + "backbone.layers." + std::to_string(i) + ".";
    std::visit([&](const auto& b) { b->collect(p, out); }, blocks_[i]);
  }
  norm_f_.collect(prefix + "backbone.norm_f.", out);
  if (lm_head_) lm_head_->collect(prefix + "lm_head.", out);
}

}  // namespace magellano::nn
