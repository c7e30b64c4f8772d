// The language model: embedding, a pattern of Mamba and MoE residual blocks, a final RMSNorm
// and an LM head (tied to the embedding unless configured otherwise).
//
//   ids (B, L) i32 → embedding (B, L, D) → blocks → norm_f → logits (B, L, V)
//   loss = cross_entropy(logits, targets) + Σ over MoE blocks of their aux losses
//
// Parameter names follow Hugging Face's MambaForCausalLM (and Mixtral for MoE blocks):
// backbone.embeddings.weight, backbone.layers.{i}.{norm,mixer|moe}.…, backbone.norm_f.weight,
// lm_head.weight (only when untied).
#pragma once
#include <memory>
#include <variant>
#include <vector>

#include "magellano/nn/linear.hpp"
#include "magellano/nn/mamba.hpp"
#include "magellano/nn/moe.hpp"

namespace magellano::nn {

struct ModelSpec {
  int64_t vocab_size = 0, dim = 0;
  std::string layers;   // one character per block: 'M' Mamba, 'E' MoE (experts)
  MambaConfig mamba;    // dim and num_layers are filled in from the spec
  MoEConfig moe;        // dim is filled in from the spec
  bool tie_embeddings = true;
  float norm_eps = 1e-5f;
};

struct ModelOutput {
  Tensor logits;                       // (B, L, V)
  Tensor aux_loss;                     // (1): Σ of the MoE blocks' aux losses; undefined without MoE
  std::vector<Tensor> expert_counts;   // one (X) i32 tensor per MoE block
};

struct LossOutput {
  Tensor loss;                        // (1) = ce + aux: what backward starts from
  Tensor ce;                          // (1) mean cross-entropy over the predicted positions
  Tensor aux;                         // (1) or undefined
  std::vector<Tensor> expert_counts;  // per MoE block, (X) i32
};

// The recurrent state of every Mamba block, for step-by-step decoding.
struct DecodeState {
  std::vector<MambaState> mamba;  // one per block; empty entries for MoE blocks
};

class Model : public Module {
 public:
  Model(Context& ctx, const ModelSpec& spec, uint64_t seed);
  const ModelSpec& spec() const { return spec_; }

  // ids: (B, L) i32. With `state`, it receives the decode state after the last position.
  ModelOutput forward(const Tensor& ids, DecodeState* state = nullptr) const;
  // targets: (B, L) i32 (the next token of each position; -100 = ignore).
  LossOutput loss(const Tensor& ids, const Tensor& targets) const;
  // One position for every sequence, no autograd: ids_t (B) i32 → logits (B, V).
  Tensor step(const Tensor& ids_t, DecodeState& state) const;
  // Prefill for decoding, no autograd: ids (B, L) i32 → the logits of the last position only
  // (B, V), equal to forward(ids).logits[:, L-1]; `state` receives the state after it. Never
  // holds (B, L, V) logits, so long prompts with large vocabularies fit.
  Tensor prefill(const Tensor& ids, DecodeState& state) const;
  DecodeState empty_state(int64_t batch) const;

  void collect(const std::string& prefix, std::vector<Parameter>& out) const override;

 private:
  Tensor head(const Tensor& h) const;  // norm_f then the LM head: (..., D) → (..., V)
  // Embedding and blocks: ids (B, L) → the residual stream (B, L, D); MoE outputs go to `out`.
  Tensor body(const Tensor& ids, DecodeState* state, ModelOutput& out) const;
  ModelSpec spec_;
  Init init_;  // one generator for every draw, in construction order (before embedding_)
  Embedding embedding_;
  std::vector<std::variant<std::unique_ptr<MambaBlock>, std::unique_ptr<MoEBlock>>> blocks_;
  RMSNorm norm_f_;
  std::unique_ptr<Linear> lm_head_;  // null when tied
};

}  // namespace magellano::nn
