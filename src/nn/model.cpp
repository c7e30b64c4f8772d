#include "magellano/nn/model.hpp"

#include <cmath>
#include <type_traits>

#include "magellano/nn/decode_path.hpp"
#include "magellano/nn/training_mode.hpp"
#include "magellano/ops/cross_entropy.hpp"
#include "magellano/ops/decode_gemv.hpp"
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
      lora_init_(seed ^ 0x4C6F526141646170ULL),
      embedding_(ctx, std::max<int64_t>(spec.vocab_size, 1), std::max<int64_t>(spec.dim, 1), init_),
      norm_f_(ctx, std::max<int64_t>(spec.dim, 1), spec.norm_eps) {
  if (spec.vocab_size < 2 || spec.dim < 1 || spec.layers.empty())
    throw Error("model: vocab_size, dim and a non-empty layer pattern are required.");
  Init& init = init_;
  spec_.mamba.dim = spec.dim;
  spec_.mamba.num_layers = static_cast<int64_t>(spec.layers.size());
  spec_.mamba2.dim = spec.dim;
  spec_.mamba2.num_layers = static_cast<int64_t>(spec.layers.size());
  spec_.mamba2.norm_eps = spec.norm_eps;
  spec_.attention.dim = spec.dim;
  spec_.attention.num_layers = static_cast<int64_t>(spec.layers.size());
  spec_.attention.norm_eps = spec.norm_eps;
  if (!(spec.embedding_multiplier > 0.0f) || !(spec.residual_multiplier > 0.0f) || !(spec.logits_scaling > 0.0f) ||
      !std::isfinite(spec.embedding_multiplier) || !std::isfinite(spec.residual_multiplier) ||
      !std::isfinite(spec.logits_scaling))
    throw Error("model: the embedding, residual and logits multipliers must be finite and positive.");
  spec_.moe.dim = spec.dim;
  spec_.mlp.dim = spec.dim;
  const float w2_scale = 1.0f / std::sqrt(static_cast<float>(spec.layers.size()));
  if (spec.base_storage != WeightStorage::f32 && spec.base_storage != WeightStorage::int4 && !spec.lora.enabled())
    throw Error("model: frozen fp16 / NF4 base weights need LoRA (lora.rank >= 1).");
  if (spec.base_storage == WeightStorage::int4 && spec.weight_dtype != DType::f32)
    throw Error("model: an int4 base keeps its other weights in fp32 (train.param_dtype \"fp32\").");
  if (spec.weight_dtype != DType::f32 && spec.weight_dtype != DType::f16)
    throw Error(std::string("model: weights are stored as f32 or f16, not ") + to_string(spec.weight_dtype) + ".");
  if (spec.weight_dtype == DType::f16 && spec.lora.enabled())
    throw Error("model: fp16 weight storage is for full training; with LoRA the frozen base is "
                "stored as lora.base_precision and the adapters train in fp32.");
  if (spec.weight_dtype == DType::f16) embedding_.store_half();
  if (spec.checkpoint_every < 0) throw Error("model: checkpoint_every must be >= 0.");
  for (char kind : spec.layers) {
    if (kind == 'M')
      blocks_.emplace_back(std::make_unique<MambaBlock>(ctx, spec_.mamba, init));
    else if (kind == 'S')
      blocks_.emplace_back(std::make_unique<Mamba2Block>(ctx, spec_.mamba2, init));
    else if (kind == 'A')
      blocks_.emplace_back(std::make_unique<AttentionBlock>(ctx, spec_.attention, init));
    else if (kind == 'E')
      blocks_.emplace_back(std::make_unique<MoEBlock>(ctx, spec_.moe, init, w2_scale, spec.norm_eps));
    else if (kind == 'F')
      blocks_.emplace_back(std::make_unique<MlpBlock>(ctx, spec_.mlp, init, w2_scale, spec.norm_eps));
    else
      throw Error(std::string("model: unknown block '") + kind + "' in the layer pattern (use M, S, A, E or F).");
    std::visit([&](const auto& b) { b->residual_scale = spec.residual_multiplier; }, blocks_.back());
    prepare_block(blocks_.size() - 1);
  }
  if (!spec.tie_embeddings) {
    lm_head_ = std::make_unique<Linear>(ctx, spec.dim, spec.vocab_size, false, init);
    if (spec.weight_dtype == DType::f16) lm_head_->store_half();
  }
  if (spec_.lora.enabled() || spec_.base_storage == WeightStorage::int4) {
    embedding_.weight.set_requires_grad(false);
    norm_f_.weight.set_requires_grad(false);
    if (lm_head_) lm_head_->freeze(WeightStorage::f32);
  }
}

void Model::prepare_block(size_t i) {
  const LoRAConfig& lc = spec_.lora;
  std::vector<Parameter> params;
  std::vector<NamedLinear> lins;
  const std::string p = "backbone.layers." + std::to_string(i) + ".";
  std::visit([&](const auto& b) {
    b->collect(p, params);
    b->collect_linears(p, lins);
  }, blocks_[i]);
  if (!lc.enabled() && spec_.base_storage != WeightStorage::int4) {
    if (spec_.weight_dtype == DType::f16)
      for (auto& l : lins) l.linear->store_half();
    return;
  }
  for (auto& prm : params) prm.tensor.set_requires_grad(false);
  for (auto& l : lins) {
    const bool dense = spec_.base_storage == WeightStorage::int4 && spec_.int4_select && !spec_.int4_select(l.path);
    l.linear->freeze(dense ? WeightStorage::f32 : spec_.base_storage, spec_.int4_group_size);
    if (lc.enabled() && lc.targets_kind(l.kind)) {
      // A per-layer dropout stream: a hash of the module path.
      uint64_t h = 1469598103934665603ULL;
      for (char c : l.path) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
      l.linear->add_lora(lc.rank, lc.alpha, lc.dropout, lora_init_, h);
    }
  }
}

void Model::collect_linears(const std::string& prefix, std::vector<NamedLinear>& out) {
  for (size_t i = 0; i < blocks_.size(); ++i) {
    const std::string p = prefix + "backbone.layers." + std::to_string(i) + ".";
    std::visit([&](const auto& b) { b->collect_linears(p, out); }, blocks_[i]);
  }
  if (lm_head_) lm_head_->collect_linears(prefix + "lm_head.", out);
}

std::vector<Parameter> Model::lora_parameters() const {
  std::vector<Parameter> out;
  for (auto& l : const_cast<Model*>(this)->linears()) l.linear->collect_lora(l.path + ".", out);
  return out;
}

std::vector<Parameter> Model::trainable_parameters() const {
  return spec_.lora.enabled() ? lora_parameters() : parameters();
}

Tensor Model::head(const Tensor& h) const {
  Tensor x = norm_f_.forward(h);
  const Tensor logits = lm_head_ ? lm_head_->forward(x) : ops::linear(x, embedding_.weight);
  return spec_.logits_scaling == 1.0f ? logits : ops::scale(logits, 1.0f / spec_.logits_scaling);
}

ModelOutput Model::forward(const Tensor& ids, DecodeState* state, int64_t row, const Tensor& prefix,
                           const Tensor& positions) const {
  ModelOutput out;
  out.logits = head(body(ids, state, row, out, prefix, positions));
  return out;
}

Tensor Model::prefill(const Tensor& ids, DecodeState& state, int64_t row, const Tensor& prefix,
                      const Tensor& positions) const {
  autograd::NoGradScope no_grad;
  ModelOutput unused;
  const Tensor h = body(ids, &state, row, unused, prefix, positions);  // (B, L, D)
  const int64_t B = ids.size(0), L = ids.size(1), D = spec_.dim;
  std::vector<int32_t> last(B);
  for (int64_t b = 0; b < B; ++b) last[b] = static_cast<int32_t>(b * L + L - 1);
  const Tensor idx = Tensor::from_host_i32(h.ctx(), Shape{B}, last);
  return head(ops::gather_rows(h.view(Shape{B * L, D}), idx));  // (B, V)
}

Tensor Model::body(const Tensor& ids, DecodeState* state, int64_t row, ModelOutput& out, const Tensor& prefix,
                   const Tensor& positions) const {
  if (ids.dtype() != DType::i32 || ids.shape().ndim() != 2)
    throw Error("model: ids must be (B, L) i32, got " + ids.shape().str() + " " + to_string(ids.dtype()));
  const int64_t B = ids.size(0), L = ids.size(1);
  if (state) {
    if (state->mamba.empty()) {
      if (row != 0) throw Error("model: a prefill into row " + std::to_string(row) + " needs a state from empty_state().");
      *state = empty_state(B);
    }
    if (state->mamba.size() != blocks_.size()) throw Error("model: the decode state belongs to another model.");
    if (row < 0 || row + B > state->batch)
      throw Error("model: rows [" + std::to_string(row) + ", " + std::to_string(row + B) +
                  ") are outside the decode state's " + std::to_string(state->batch) + " rows.");
    if (!state->kv.empty()) state->kv.begin_prefill(row, B, L);
  }
  if (training() && autograd::grad_enabled()) advance_dropout_generation();
  Tensor h = embedding_.forward(ids);  // (B, L, D), the fp32 residual stream
  if (spec_.embedding_multiplier != 1.0f) h = ops::scale(h, spec_.embedding_multiplier);
  const size_t n = blocks_.size();
  const size_t k = static_cast<size_t>(spec_.checkpoint_every);
  const bool reverse = spec_.mamba.bidirectional_prefix || spec_.mamba2.bidirectional_prefix;
  const PrefixReversal reversal = prefix.defined() && reverse ? PrefixReversal::make(prefix, B, L) : PrefixReversal{};
  if (k == 0 || state || !autograd::grad_enabled()) {
    Segment s = run_blocks(0, n, h, Tensor(), state, row, prefix, reversal, positions);
    if (state && !state->kv.empty()) state->kv.end_prefill(row, B, L);
    h = s.h;
    out.aux_loss = s.aux;
    out.expert_counts = std::move(s.counts);
  } else {
    for (size_t b = 0; b < n; b += k) {
      Segment s = checkpointed(b, std::min(n, b + k), h, prefix, reversal, positions);
      h = s.h;
      if (s.aux.defined())
        out.aux_loss = out.aux_loss.defined() ? ops::add(out.aux_loss, s.aux) : s.aux;
      out.expert_counts.insert(out.expert_counts.end(), s.counts.begin(), s.counts.end());
    }
  }
  return h;
}

Model::Segment Model::run_blocks(size_t begin, size_t end, Tensor h, Tensor aux, DecodeState* state,
                                 int64_t row, const Tensor& prefix, const PrefixReversal& reversal,
                                 const Tensor& positions) const {
  Segment out;
  for (size_t i = begin; i < end; ++i) {
    std::visit(Visit{[&](const std::unique_ptr<MoEBlock>& b) {
                       MoEOutput r = b->forward(h);
                       h = r.out;
                       aux = aux.defined() ? ops::add(aux, r.aux_loss) : r.aux_loss;
                       out.counts.push_back(r.expert_counts);
                     },
                     [&](const std::unique_ptr<AttentionBlock>& b) {
                       h = b->forward(h, state ? &state->kv : nullptr, i, row, prefix, positions);
                     },
                     [&](const std::unique_ptr<MlpBlock>& b) { h = b->forward(h); },
                     [&](const auto& b) {  // Mamba, Mamba2: the rows' states, then into the batch's
                       auto run = [&](MambaState* s) { return b->forward(h, s, reversal); };
                       if (!state) {
                         h = run(nullptr);
                         return;
                       }
                       MambaState rows;
                       h = run(&rows);
                       MambaState& dst = state->mamba[i];
                       if (row == 0 && h.size(0) == state->batch) {
                         dst = std::move(rows);
                         return;
                       }
                       autograd::NoGradScope no_grad;
                       ops::copy_into(rows.conv, dst.conv.narrow_rows(row, row + h.size(0)));
                       ops::copy_into(rows.ssm, dst.ssm.narrow_rows(row, row + h.size(0)));
                     }},
               blocks_[i]);
  }
  out.h = h;
  out.aux = aux;
  return out;
}

// The segment's blocks run once without recording; only the input h is kept. One tape node
// (on the aux loss when the segment has MoE blocks, which is recorded last, else on h) replays
// the blocks with recording on a nested tape, in the same order and on the same values (the
// dropout generation is set back), and runs backward through them from the gradients of h
// and aux: every op sees exactly the inputs and output gradients it saw without
// checkpointing, so each parameter's gradient is accumulated in the same order to the same
// bits. The input's gradient is gathered on a stand-in leaf and then copied (× 1) into h's.
// With spec.checkpoint_inputs_fp16 the kept input is an fp16 copy and both the forward and the
// replay start from its fp32 widening, so the replay still matches the forward bit for bit.
Model::Segment Model::checkpointed(size_t begin, size_t end, const Tensor& h_in, const Tensor& prefix,
                                   const PrefixReversal& reversal, const Tensor& positions) const {
  Segment s;
  // The kept input: h_in itself, or its fp16 copy (h_in is then free once the forward moves on).
  const bool fp16 = spec_.checkpoint_inputs_fp16;
  Tensor kept = h_in;
  {
    autograd::NoGradScope no_grad;
    if (fp16) kept = ops::cast(h_in, DType::f16);
    s = run_blocks(begin, end, fp16 ? ops::cast(kept, DType::f32) : h_in, Tensor(), nullptr, 0, prefix, reversal,
                   positions);
  }
  struct Shared {
    bool done = false;
    std::shared_ptr<AutogradMeta> h_out, aux;
  };
  auto shared = std::make_shared<Shared>();
  const uint64_t generation = dropout_generation();
  const bool in_grad = h_in.requires_grad();
  auto replay = [this, begin, end, kept, prefix, reversal, positions, fp16, in_grad, generation, shared,
                 m_in = autograd::grad_meta(h_in)](const Tensor&) {
    if (shared->done) return;
    shared->done = true;
    auto grad_of = [](const std::shared_ptr<AutogradMeta>& m) {
      return m && m->grad_valid ? m->grad : Tensor();
    };
    const Tensor dh = grad_of(shared->h_out), daux = grad_of(shared->aux);
    Tensor leaf;
    {
      autograd::NoGradScope no_grad;
      leaf = fp16 ? ops::cast(kept, DType::f32) : kept.view(kept.shape());
    }
    if (in_grad) leaf.set_requires_grad(true);
    {
      autograd::NestedTape tape;
      autograd::EnableGradScope grad_on;
      GenerationScope same_masks(generation);
      Segment r = run_blocks(begin, end, leaf, Tensor(), nullptr, 0, prefix, reversal, positions);
      std::vector<Tensor> roots{r.h}, seeds{dh};
      if (r.aux.defined()) roots.push_back(r.aux), seeds.push_back(daux);
      autograd::backward(roots, seeds);
    }
    if (m_in && leaf.grad().defined()) ops::accumulate_grad(m_in, leaf.grad());
  };
  shared->h_out = s.h.meta();
  autograd::record(s.h, replay);
  if (s.aux.defined()) {
    shared->aux = s.aux.meta();
    autograd::record(s.aux, replay);
  }
  return s;
}

LossOutput Model::loss(const Tensor& ids, const Tensor& targets, const Tensor& prefix,
                       const Tensor& positions) const {
  if (targets.shape() != ids.shape())
    throw Error("model: targets " + targets.shape().str() + " must match ids " + ids.shape().str());
  ModelOutput f = forward(ids, nullptr, 0, prefix, positions);
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
  s.batch = batch;
  std::vector<std::pair<int64_t, int64_t>> kv_heads;  // (nKV, d) per block, (0, 0) without attention
  bool attention = false;
  for (const auto& b : blocks_) {
    kv_heads.emplace_back(0, 0);
    std::visit(Visit{[&](const std::unique_ptr<MoEBlock>&) { s.mamba.push_back({}); },
                     [&](const std::unique_ptr<MlpBlock>&) { s.mamba.push_back({}); },
                     [&](const std::unique_ptr<AttentionBlock>& a) {
                       s.mamba.push_back({});
                       kv_heads.back() = {a->mixer.cfg.kv(), a->mixer.cfg.width()};
                       attention = true;
                     },
                     [&](const auto& m) { s.mamba.push_back(m->mixer.empty_state(batch)); }},
               b);
  }
  if (attention) s.kv = KvCache(embedding_.weight.ctx(), batch, kv_heads);
  return s;
}

Tensor Model::step(const Tensor& ids_t, DecodeState& state, const Tensor& ids_2d) const {
  autograd::NoGradScope no_grad;
  if (ids_t.dtype() != DType::i32 || ids_t.shape().ndim() != 1)
    throw Error("model: step ids must be (B) i32, got " + ids_t.shape().str());
  if (state.mamba.size() != blocks_.size()) throw Error("model: the decode state belongs to another model.");
  if (ids_t.size(0) != state.batch)
    throw Error("model: the step has " + std::to_string(ids_t.size(0)) + " rows, the decode state " +
                std::to_string(state.batch) + ".");
  Tensor h = embedding_.forward(ids_t);  // (B, D)
  if (spec_.embedding_multiplier != 1.0f) h = ops::scale(h, spec_.embedding_multiplier);
  if (!state.kv.empty()) state.kv.begin_step();
  const bool fused = fused_decode() && state.batch <= ops::kDecodeGemvRows;
  if (fused) state.moe.resize(blocks_.size());
  auto moe_step = [&](const MoEBlock& b, size_t i) {
    if (fused && b.norm.weight.dtype() == DType::f32 && !state.moe[i]) state.moe[i] = b.moe.decode_weights();
    return fused && state.moe[i] ? b.step(h, *state.moe[i]) : b.forward(h).out;
  };
  for (size_t i = 0; i < blocks_.size(); ++i) {
    std::visit(Visit{[&](const std::unique_ptr<MoEBlock>& b) { h = moe_step(*b, i); },
                     [&](const std::unique_ptr<MlpBlock>& b) { h = b->step(h); },
                     [&](const std::unique_ptr<AttentionBlock>& b) { h = b->step(h, state.kv, i, ids_2d); },
                     [&](const auto& b) { h = b->step(h, state.mamba[i]); }},
               blocks_[i]);
  }
  if (!state.kv.empty()) state.kv.end_step();
  // The final norm and the LM head in one launch.
  const Tensor& head_w = lm_head_ ? lm_head_->weight : embedding_.weight;
  if (fused && (!lm_head_ || fused_linear(*lm_head_)) && head_w.dtype() == DType::f32 &&
      norm_f_.weight.dtype() == DType::f32) {
    ops::DecodeGemvParts parts;
    parts.norm = norm_f_.weight, parts.eps = norm_f_.eps, parts.scale = 1.0f / spec_.logits_scaling;
    return ops::decode_gemv(h, head_w, parts);
  }
  return head(h);
}

void Model::collect(const std::string& prefix, std::vector<Parameter>& out) const {
  // Base parameters only (NF4 weights are not tensors of their own); adapters: lora_parameters().
  embedding_.collect(prefix + "backbone.embeddings.", out);
  for (size_t i = 0; i < blocks_.size(); ++i) {
    const std::string p = prefix + "backbone.layers." + std::to_string(i) + ".";
    std::visit([&](const auto& b) { b->collect(p, out); }, blocks_[i]);
  }
  norm_f_.collect(prefix + "backbone.norm_f.", out);
  if (lm_head_) lm_head_->collect(prefix + "lm_head.", out);
}

}  // namespace magellano::nn
