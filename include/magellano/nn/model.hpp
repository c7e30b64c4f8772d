// The language model: embedding, a pattern of Mamba, Mamba2, attention and MoE residual blocks, a
// final RMSNorm and an LM head (tied to the embedding unless configured otherwise).
//
//   ids (B, L) i32 → embedding (B, L, D) × embedding_multiplier → blocks → norm_f
//     → logits (B, L, V) / logits_scaling
//   each block: h ← h + residual_multiplier · f(RMSNorm(h))
//   loss = cross_entropy(logits, targets) + Σ over MoE blocks of their aux losses
//
// Parameter names follow Hugging Face's MambaForCausalLM / Mamba2ForCausalLM (and Mixtral for
// MoE blocks): backbone.embeddings.weight, backbone.layers.{i}.{norm,mixer|moe}.…,
// backbone.norm_f.weight, lm_head.weight (only when untied).
#pragma once
#include <functional>
#include <memory>
#include <variant>
#include <vector>

#include "magellano/nn/attention.hpp"
#include "magellano/nn/embedding.hpp"
#include "magellano/nn/linear.hpp"
#include "magellano/nn/mamba.hpp"
#include "magellano/nn/mamba2.hpp"
#include "magellano/nn/mlp.hpp"
#include "magellano/nn/moe.hpp"
#include "magellano/nn/rmsnorm.hpp"

namespace magellano::nn {

struct ModelSpec {
  int64_t vocab_size = 0, dim = 0;
  // One character per block: 'M' Mamba, 'S' Mamba2 (SSD), 'A' attention, 'E' MoE (experts),
  // 'F' dense MLP.
  std::string layers;
  MambaConfig mamba;    // dim and num_layers are filled in from the spec
  Mamba2Config mamba2;  // dim, num_layers and norm_eps are filled in from the spec
  AttentionConfig attention;  // dim, num_layers and norm_eps are filled in from the spec
  MoEConfig moe;        // dim is filled in from the spec
  MlpConfig mlp;        // dim is filled in from the spec
  bool tie_embeddings = true;
  float norm_eps = 1e-5f;
  // Granite's scalings (1 = none, the arithmetic of a model without them).
  float embedding_multiplier = 1.0f, residual_multiplier = 1.0f, logits_scaling = 1.0f;
  // LoRA: when lora.enabled(), every base parameter is frozen, the Linear weights are stored
  // as `base_storage`, and the targeted Linears get adapters (A drawn from a generator of its
  // own, so the base weights are those of the same seed without LoRA). Each block is built,
  // converted and quantized before the next one is, so fp32 weights of the whole model never
  // exist at once. base_storage int4 also works without LoRA: an inference model (everything
  // frozen, the block Linears int4: a model read from an int4 file for eval and generate).
  LoRAConfig lora;
  WeightStorage base_storage = WeightStorage::f32;
  int64_t int4_group_size = 128;  // base_storage int4: the group size (a width it does not divide stays f32)
  // base_storage int4: which Linears (by module path) are int4; empty: all that fit. (A model read
  // from an int4 file keeps the weights the file holds dense, dense.)
  std::function<bool(const std::string& path)> int4_select;
  // Storage of the matrix weights: every Linear weight (Mamba / Mamba2 projections, MoE router and
  // experts, an untied LM head) and the embedding (with the tied LM head). f16: trainable fp16
  // parameters (train.param_dtype "fp16"), drawn in fp32 like the f32 model's and rounded to
  // nearest; each is widened to fp32 right before its product and its gradient is fp16. The
  // other parameters (norm weights, conv1d, dt_proj's bias, Mamba2's dt_bias, A_log, D) stay f32: they are few,
  // and their updates are far below an fp16 ulp of their values (RMSNorm weights start at 1).
  // Each block is converted before the next is built. Not with LoRA (the adapters train in
  // f32; the frozen base has base_storage).
  DType weight_dtype = DType::f32;
  // Gradient checkpointing: segments of this many blocks run forward without recording and
  // are recomputed (recording on a nested tape) in the backward; 0 = off. Gradients are the
  // same bits as without it.
  int64_t checkpoint_every = 0;
  // With checkpointing: each segment's input, the only activation kept across the forward, is
  // stored as fp16 (half the bytes). The forward continues from the rounded value, so the
  // replay sees exactly what the forward saw; the residual stream is rounded to fp16 at each
  // segment boundary (relative 2^-11) and its gradient passes the rounding unchanged.
  bool checkpoint_inputs_fp16 = false;
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

// What decoding keeps per row of a batch: the recurrent state of every Mamba and Mamba2 block, and
// the attention blocks' keys and values.
struct DecodeState {
  int64_t batch = 0;
  std::vector<MambaState> mamba;  // one per block (a Mamba2State for Mamba2); empty for other blocks
  KvCache kv;                     // empty without attention blocks
  // Per block, the MoE blocks' stacked weights for the fused decode (MoE::decode_weights), built
  // by the first Model::step that needs them; empty until then, null for other blocks.
  std::vector<std::shared_ptr<const ops::MoEDecodeWeights>> moe;
  // Row b is done: its cached keys and values are freed at once (its Mamba state is a fixed size).
  void end_row(int64_t b) {
    if (!kv.empty()) kv.release(b);
  }
  // Row b, ended, is to receive a new sequence (Model::prefill into it overwrites its Mamba state).
  void reopen_row(int64_t b) {
    if (!kv.empty()) kv.reopen(b);
  }
};

class Model : public Module {
 public:
  Model(Context& ctx, const ModelSpec& spec, uint64_t seed);
  const ModelSpec& spec() const { return spec_; }

  // ids: (B, L) i32. With `state`, it receives the decode state after the last position: a
  // default-constructed state becomes one of B rows; one from empty_state(N) receives rows
  // [row, row + B), which must be empty (a prompt joining a batch).
  // prefix: (B) i32 prefix lengths for prefix-LM (the attention blocks let the first prefix[b]
  // positions of row b see each other; everything else stays causal); undefined = causal.
  // positions: (B, L, 2) i32 GLM 2D ids for attention with rope_2d (undefined: (t, 0)).
  ModelOutput forward(const Tensor& ids, DecodeState* state = nullptr, int64_t row = 0,
                      const Tensor& prefix = Tensor(), const Tensor& positions = Tensor()) const;
  // targets: (B, L) i32 (the next token of each position; -100 = ignore). prefix as in forward().
  LossOutput loss(const Tensor& ids, const Tensor& targets, const Tensor& prefix = Tensor(),
                  const Tensor& positions = Tensor()) const;
  // One position for every sequence, no autograd: ids_t (B) i32 → logits (B, V). ids_2d: (B, 2)
  // i32 GLM 2D ids of this position for attention with rope_2d (undefined: (position, 0)).
  Tensor step(const Tensor& ids_t, DecodeState& state, const Tensor& ids_2d = Tensor()) const;
  // Prefill for decoding, no autograd: ids (B, L) i32 → the logits of the last position only
  // (B, V), equal to forward(ids).logits[:, L-1]; `state` receives the state after it. Never
  // holds (B, L, V) logits, so long prompts with large vocabularies fit. `row` and `prefix` as in
  // forward() (a prefix-LM model prefills its prompt as the prefix; the steps after it are causal),
  // and positions: (B, L, 2) GLM 2D ids as in forward().
  Tensor prefill(const Tensor& ids, DecodeState& state, int64_t row = 0, const Tensor& prefix = Tensor(),
                 const Tensor& positions = Tensor()) const;
  DecodeState empty_state(int64_t batch) const;

  void collect(const std::string& prefix, std::vector<Parameter>& out) const override;
  void collect_linears(const std::string& prefix, std::vector<NamedLinear>& out) override;
  // The adapters' tensors under PEFT-style names ("<module path>.lora_A.weight"), in order.
  std::vector<Parameter> lora_parameters() const;
  // What the optimizer updates: lora_parameters() with LoRA on, else parameters().
  std::vector<Parameter> trainable_parameters() const;
  void set_checkpoint_every(int64_t k) { spec_.checkpoint_every = k; }
  void set_checkpoint_inputs_fp16(bool on) { spec_.checkpoint_inputs_fp16 = on; }

 private:
  struct Segment {  // what a run of blocks gives
    Tensor h, aux;
    std::vector<Tensor> counts;
  };
  // Blocks [begin, end) on h; aux adds to `aux_in` (undefined: none yet).
  // prefix: (B) i32 lengths for the attention blocks; reversal: their gathers for the Mamba blocks.
  Segment run_blocks(size_t begin, size_t end, Tensor h, Tensor aux_in, DecodeState* state, int64_t row,
                     const Tensor& prefix, const PrefixReversal& reversal, const Tensor& positions) const;
  // One checkpointed segment: forward without recording, recompute in the backward.
  Segment checkpointed(size_t begin, size_t end, const Tensor& h, const Tensor& prefix,
                       const PrefixReversal& reversal, const Tensor& positions) const;
  void prepare_block(size_t i);  // LoRA: freezes, converts, attaches adapters; else weight_dtype
  Tensor head(const Tensor& h) const;  // norm_f then the LM head: (..., D) → (..., V)
  // Embedding and blocks: ids (B, L) → the residual stream (B, L, D); MoE outputs go to `out`.
  Tensor body(const Tensor& ids, DecodeState* state, int64_t row, ModelOutput& out,
              const Tensor& prefix = Tensor(), const Tensor& positions = Tensor()) const;
  ModelSpec spec_;
  Init init_;  // one generator for every draw, in construction order (before embedding_)
  Init lora_init_;  // the adapters' A matrices, in construction order
  Embedding embedding_;
  std::vector<std::variant<std::unique_ptr<MambaBlock>, std::unique_ptr<Mamba2Block>,
                           std::unique_ptr<AttentionBlock>, std::unique_ptr<MoEBlock>, std::unique_ptr<MlpBlock>>>
      blocks_;
  RMSNorm norm_f_;
  std::unique_ptr<Linear> lm_head_;  // null when tied
};

}  // namespace magellano::nn
