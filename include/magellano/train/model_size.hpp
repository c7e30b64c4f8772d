// Parameter counts and a training-memory estimate, computed analytically from a model config
// (no device needed). The counts equal what the layers in nn/ allocate (tests check this).
//
// Parameters (D dim, E = expand·D, R dt_rank, N d_state, W d_conv, X experts, K top_k,
// F moe.hidden, V vocab_size; for Mamba2 the model.mamba2 section's Di = expand·D, P head_dim,
// H = Di/P heads, G n_groups, N d_state, K d_conv, C = Di + 2GN, I = Di + C + H):
//   Mamba block  norm D; in_proj 2E·D (+ 2E with mamba_proj_bias); conv1d E·W (+ E with
//                mamba_conv_bias); x_proj (R + 2N)·E; dt_proj E·R + E; A_log E·N; D E;
//                out_proj D·E (+ D with mamba_proj_bias); inner norms R + 2N with mamba_inner_norms
//   Mamba2 block norm D; in_proj I·D (+ I with bias); conv1d C·K (+ C with conv_bias);
//                dt_bias, A_log, D 3H; gated norm Di; out_proj D·Di (+ D with bias)
//   attention    norm D; q_proj Q·D, k_proj and v_proj Kd·D each, o_proj D·Q (Q = heads·d,
//                Kd = kv_heads·d, d = head_dim)
//   MoE block    norm D; gate X·D; X experts of w1 F·D, w2 D·F (+ w3 F·D for SwiGLU); the shared
//                expert (F_s = moe.shared_expert_hidden > 0) the same with F_s
//   MLP block    norm D; w1 F·D, w2 D·F (+ w3 F·D for SwiGLU) with F = mlp.hidden (mlp_block_size)
//   model        embedding V·D; final norm D; LM head V·D unless tie_embeddings
// Every parameter is trainable unless LoRA is on (count_params(Config) then counts adapters). Active per token:
// the total minus the (X − K) experts per MoE layer that a token does not reach (the shared expert
// is always active).
//
// Memory for one micro-batch of B sequences × L tokens (T = B·L), fp32 everywhere:
//   weights P·4, gradients P·4, AdamW state 2·P·4 (m and v), plus activations:
//   per Mamba layer, what the forward keeps for the backward (src/nn/mamba.cpp and the ops'
//   closures): the block input and its RMSNorm output (2D) and rstd (1); the conv input x and
//   the gate z (2E); the conv output (E, kept by SiLU); the conv+SiLU output u (E); Δ before
//   its bias (E); the scan output y (E); dt (R), B and C (2N)  →  T·(2D + 6E + R + 2N + 1)
//   floats (with mamba_inner_norms + T·(R + 2N + 3): the normed dt, B, C and three rstd), + the scan's chunk states B·ceil(L/scan_chunk)·N·E, + A = −exp(A_log) twice (2E·N);
//   per Mamba2 layer (src/nn/mamba2.cpp): the block input, its norm output and rstd (2D + 1);
//   in_proj's pieces z, xBC and dt (Di + C + H); the conv output kept by SiLU (C); SiLU's
//   output split into x, B, C kept by the scan (C); the scan's step sizes and cumulative sums
//   (2H); its output y (Di); the gated norm's rstd (G) and output (Di)  →
//   T·(2D + 1 + 3Di + 3C + 3H + G) floats, + the scan's chunk states and decays
//   B·H·ceil(L/Q)·(N·P + 1) with Q = model.mamba2.chunk_size (0: 64, the device default; cut to
//   L rounded up to 8 when longer);
//   per attention layer: the block input, its norm output and rstd (2D + 1), q, k (after rope)
//   and v (Q + 2Kd), the attention output (Q) and its log-sum-exp (heads)  →
//   T·(2D + 1 + 2Q + 2Kd + heads) floats (never an L × L matrix);
//   per MoE layer: the block input and its norm output (2D), rstd and the z-loss lse (2), the
//   router logits and probabilities (2X), and per routed pair (K per token) the gathered input
//   and the expert output (2D), the pre-activations h1 (and h3) (F or 2F), its weight (1) and
//   four i32 indices, and the shared expert's h1 (and h3)  →
//   T·(2D + 2 + 2X + K·(2D + F·(1 or 2) + 5) + F_s·(1 or 2));
//   head: the final norm's input and output (2D) and rstd, the token ids, and the logits T·V
//   twice (the logits and their gradient during the cross-entropy backward);
//   workspace: the largest single layer's backward temporaries (Mamba: the gradients of x, z,
//   Δ, u, the in_proj output (2E) and B, C: T·(6E + 2N) + the scan's chunk scratch
//   scan_chunk·N·B·E; Mamba2: T·(3Di + 4C + 4H + 2HN) for the gradients of the pieces and the
//   scan's per-head dB, dC, + B·ceil(L/Q)·(G·Q² + H·N·P) for its C·Bᵀ tiles and state gradients;
//   MoE: T·K·(2D + 2F) for dxs, dys and the expert scratch; attention: T·(2Q + 2Kd + heads)), plus two residual-stream gradients T·2D.
//   MoE: T·K·(2D + 2F) for dxs, dys and the expert scratch, or T·(2D + 2F_s) for the shared expert's
//   when larger), plus two residual-stream gradients T·2D.
// The total adds the head's and the workspace's peaks even though they do not coincide, so it
// errs a little on the safe side. Allocator rounding and the kernels' tiny buffers are ignored.
#pragma once
#include <cstdint>

#include <nlohmann/json.hpp>

#include "magellano/train/config.hpp"

namespace magellano::train {

struct ParamCounts {
  int64_t total = 0, trainable = 0;
  int64_t active_per_token = 0;  // MoE layers count the gate + top_k experts
  // Parts (each a whole model's worth): embedding, LM head (0 when tied), one Mamba block, one
  // MoE block, one expert, the final norm; and the number of blocks of each kind.
  int64_t embedding = 0, lm_head = 0, mamba_block = 0, mamba2_block = 0, moe_block = 0, expert = 0,
          shared_expert = 0, final_norm = 0;
  int64_t mamba_layers = 0, mamba2_layers = 0, moe_layers = 0;
  int64_t attention_block = 0, attention_layers = 0, mlp_block = 0, mlp_layers = 0;
};

// `model` must be resolved (as load_config / Config::from_json leave it).
ParamCounts count_params(const ModelConfig& model);
// With the lora section: `trainable` = the adapters' parameters (r·(in + out) per targeted
// Linear) when lora.rank >= 1; `lora` the same number (0 without LoRA); `linear_weights` the
// elements of every Linear weight (what lora.base_precision stores as fp16 / NF4 / int4).
struct LoRACounts {
  int64_t lora = 0, linear_weights = 0;
};
LoRACounts count_lora(const Config& config);
ParamCounts count_params(const Config& config);

struct MemoryEstimate {  // bytes
  // optimizer_state: AdamW's moments in device memory (train.optimizer_states: 8 bytes per
  // trained element for fp32, 2 + 8/256 for int8; with train.optimizer_offload "host" only the
  // staging pages); optimizer_host: the moments kept in host memory instead (not in total).
  int64_t weights = 0, gradients = 0, optimizer_state = 0, activations = 0, total = 0;
  int64_t optimizer_host = 0;
  // activations = mamba_activations + scan_states + mamba2_activations + attention_activations + mlp_activations + moe_activations + head +
  // workspace; mamba2_activations includes the SSD's chunk states
  int64_t mamba_activations = 0, scan_states = 0, mamba2_activations = 0, moe_activations = 0, head = 0,
          workspace = 0, attention_activations = 0, mlp_activations = 0;
  int64_t batch = 0, seq_len = 0;
};

MemoryEstimate estimate_memory(const ModelConfig& model, int64_t batch, int64_t seq_len);
// With LoRA, fp16 parameters and checkpointing from the config (train.batch_size ×
// train.seq_len): weights are the frozen base at its storage (fp32 4, fp16 2, NF4 4.127/8, int4 0.5 + 2/group
// bytes per Linear weight element, the rest fp32) plus the adapters; gradients and AdamW state
// only for the adapters; with train.param_dtype "fp16", the matrix weights (every Linear weight
// and the embedding / LM head) and their gradients take 2 bytes per element, and the workspace
// adds the fp32 copy of the largest one (widened for its product); with
// gradient checkpointing every k blocks, the layer activations are one segment's worth (k
// times the larger per-block figure) plus the kept segment inputs (T·D each), and the LoRA
// intermediates ((T, r) per adapter) of one segment.
MemoryEstimate estimate_memory(const Config& config);
// Per rank of data-parallel training on `ranks` ranks (mpirun -np N): every rank holds all the
// weights and gradients and a micro-batch of train.batch_size, so those and the activations
// are estimate_memory(config)'s; with train.zero_stage 1 (and ranks > 1) the moments (device,
// or host and pages with optimizer_offload "host") are the largest rank's share
// (optim/shard.hpp): S = min(E, ceil(E / N) rounded up to a multiple of 256) of the E trained
// elements (the pack's padding ignored, as above). ranks >= 1.
MemoryEstimate estimate_rank_memory(const Config& config, int64_t ranks);

// One dense MLP block ('F' layer, nn::MlpBlock) of `c`, for a micro-batch of `tokens` = B·L tokens,
// to be added per such layer (count_params / estimate_memory do not know the letter yet):
//   params           norm D + w1 F·D + w2 D·F (+ w3 F·D for SwiGLU), all trainable without LoRA
//   linear_weights   the Linear weights' elements (what fp16 / NF4 / int4 storage applies to)
//   lora_per_rank    Σ (in + out) of w1, w2, w3: its LoRA parameters are rank × this (kind "mlp")
//   activation_bytes what its forward keeps: T·(2D + 1 + F·(2 or 1)) floats (block input, norm
//                    output and rstd; ops::expert_mlp's h1 and h3)
//   workspace_bytes  its backward temporaries: T·(2D + 2F) floats (the MoE's formula with K = 1)
struct MlpBlockSize {
  int64_t params = 0, linear_weights = 0, lora_per_rank = 0, activation_bytes = 0, workspace_bytes = 0;
};
MlpBlockSize mlp_block_size(const nn::MlpConfig& c, int64_t tokens);

nlohmann::json to_json(const ParamCounts& p);
nlohmann::json to_json(const MemoryEstimate& m);

}  // namespace magellano::train
