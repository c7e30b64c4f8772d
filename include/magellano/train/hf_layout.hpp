// Hugging Face hybrid checkpoints (GraniteMoeHybridForCausalLM, JambaForCausalLM) as Magellano
// models: the training config that builds the same network, and where each of our parameters
// lives in the folder's safetensors.
//
// A Hugging Face decoder layer i is two of our residual blocks, 2i and 2i + 1:
//   block 2i     input_layernorm + the mixer: 'S' (Granite's Mamba2 layer), 'M' (Jamba's Mamba)
//                or 'A' (attention)
//   block 2i + 1 the feed-forward's norm (Granite post_attention_layernorm, Jamba
//                pre_ff_layernorm) + 'E' (experts; Granite with its shared MLP as the shared
//                expert) or 'F' (a dense SwiGLU MLP: Granite's shared MLP alone, Jamba's MLP)
// Granite's multipliers become model.embedding_multiplier / residual_multiplier /
// logits_scaling and attention_multiplier the score scale; its router is top-k-then-softmax.
// Jamba's router is softmax-then-top-k without renormalisation, its Mamba blocks have the dt/B/C
// RMSNorms, and its attention is NoPE.
//
// Packed tensors are read by rows (the tensor viewed as (rows, last dim)):
//   Granite block_sparse_moe.input_linear.weight (X, 2F, D): expert e's w1 (gate) = rows
//     [2eF, 2eF + F), w3 (up) = [2eF + F, 2(e+1)F); output_linear.weight (X, D, F): w2 = [eD, (e+1)D)
//   Granite shared_mlp.input_linear.weight (2Fs, D): w1 = rows [0, Fs), w3 = [Fs, 2Fs)
//   Jamba experts: feed_forward.experts.{e}.{gate_proj, up_proj, down_proj}.weight, or the fused
//     feed_forward.experts.gate_up_proj (X, 2F, D) / down_proj (X, D, F) of newer transformers
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "magellano/train/config.hpp"

namespace magellano::train {

// Rows [row_begin, row_end) of the tensor `name` viewed as (rows, last dim); row_end -1 = all of
// it (then the tensor's shape must equal the parameter's).
struct HfSlice {
  std::string name;
  int64_t row_begin = 0, row_end = -1;
  bool whole() const { return row_begin == 0 && row_end < 0; }
};

// Our parameter name -> where it is in the checkpoint's files. Candidates in order: the first
// that the files contain is read (old and new spellings of one tensor).
using HfLocator = std::function<std::vector<HfSlice>(const std::string& parameter)>;

// The hybrid families: "granitemoehybrid" and "jamba". Nothing for other folders.
bool is_hf_hybrid_dir(const std::filesystem::path& dir);

struct HfHybrid {
  Config config;
  HfLocator locate;
};
// Reads <dir>/config.json (one clear line for what is not supported) and builds both.
HfHybrid read_hf_hybrid(const std::filesystem::path& dir);

}  // namespace magellano::train
