// A Magellano model as a GGUF file that llama.cpp runs (`magellano export --format gguf`): the
// architecture llama.cpp has for the layer pattern, its metadata keys and tensor names, and the
// transformations llama.cpp's converter (convert_hf_to_gguf.py) applies, so the file equals what
// the converter would write from the same weights in Hugging Face's layout.
//
// Architectures (general.architecture), by layer pattern (config.hpp's letters):
//   mamba          'M' only (Mamba1; no dt/B/C norms, no projection biases)
//   mamba2         'S' only (Mamba2; no projection biases, time_step_limit (0, inf): llama.cpp
//                  never clamps the step)
//   granitehybrid  pairs (S|A)(E|F) with every feed-forward E or every one F (IBM Granite 4.0-H: Mamba2
//                  or attention, then a MoE with an optional shared expert, or a dense MLP);
//                  the router either top-k-then-softmax or softmax-then-top-k renormalised (the same
//                  weights); rotary positions NeoX-paired or none; Granite's multipliers
//   jamba          pairs (M|A)(E|F) (AI21 Jamba: Mamba with dt/B/C RMSNorms, NoPE attention with the
//                  1/sqrt(d) scale and heads × head_dim = dim, a MoE routed softmax-then-top-k without
//                  renormalisation or a dense MLP, one hidden width for both)
// all with SwiGLU MLPs, a Mamba inner width of 2 × dim (llama.cpp asserts it) and no LoRA adapter
// (merge it first). Anything else — Magellano's Mamba1 + MoE presets ("(MMME)x3M") among them —
// is refused with one line naming what llama.cpp lacks.
//
// Tensors (ggml dims ne, fastest first; PyTorch shape (a, b) is ne {b, a}), per layer N:
//   token_embd.weight {D, V}, output_norm.weight {D}, output.weight {D, V} (only when untied)
//   blk.N.attn_norm.weight {D}                       the mixer's RMSNorm
//   mamba / jamba 'M': ssm_in {D, 2E}, ssm_conv1d.weight {K, E} (conv1d (E, 1, K) squeezed),
//     ssm_conv1d.bias {E} (zeros when the model has none: llama.cpp requires it), ssm_x {E, R + 2N},
//     ssm_dt.weight {R, E}, ssm_dt.bias {E}, ssm_a {N, E} = -exp(A_log), ssm_d {E}, ssm_out {E, D};
//     jamba also ssm_dt_norm {R}, ssm_b_norm {N}, ssm_c_norm {N}
//   mamba2 / granitehybrid 'S': ssm_in {D, 2Di + 2GN + H}, ssm_conv1d.weight {K, Di + 2GN}, .bias,
//     ssm_dt.bias {H} (dt_bias), ssm_a {1, H} = -exp(A_log) as (H, 1), ssm_d {1, H},
//     ssm_norm.weight {Di/G, G} (reshaped to groups), ssm_out {Di, D}
//   'A': attn_q {D, nH·d}, attn_k / attn_v {D, nKV·d}, attn_output {nH·d, D}; granitehybrid's q and k
//     rows permuted within each head as the converter's LlamaModel.permute (pairs (i, i + d/2) become
//     adjacent: llama.cpp's "normal" rope then equals the NeoX pairing)
//   blk.N.ffn_norm.weight {D}
//   'E': ffn_gate_inp {D, X} (router), ffn_gate_exps / ffn_up_exps {D, F, X} (w1 / w3 stacked),
//     ffn_down_exps {F, D, X}; granitehybrid's shared expert ffn_{gate,up}_shexp {D, Fs},
//     ffn_down_shexp {Fs, D}
//   'F': ffn_gate / ffn_up {D, F}, ffn_down {F, D}
// Types: --type f32 / f16 / q8_0 for the matrices; F32 always for 1-D tensors, names ending
// "_norm.weight", names not ending ".weight" (ssm_a, ssm_d, biases), ssm_conv1d and ffn_gate_inp
// (the converter's rules); q8_0 falls back to F16 for a tensor whose rows are not a multiple of 32.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

#include "magellano/data/tokenizer.hpp"
#include "magellano/io/gguf_writer.hpp"
#include "magellano/nn/model.hpp"
#include "magellano/train/config.hpp"

namespace magellano::train {

enum class GgufArch { mamba, mamba2, granitehybrid, jamba };
const char* gguf_arch_name(GgufArch a);  // "mamba", "mamba2", "granitehybrid", "jamba"

// The llama.cpp architecture that computes what this model computes; throws magellano::Error with
// one line naming what llama.cpp has no architecture for.
GgufArch gguf_arch_for(const Config& cfg);

struct GgufExportOptions {
  io::GgmlType type = io::GgmlType::f32;  // the matrices' type (f32, f16 or q8_0)
  std::string name;                       // general.name
  uint32_t alignment = io::kGgufDefaultAlignment;
  int64_t context_length = 0;  // {arch}.context_length; 0 = the converter's 2^20 for recurrent-only
                               // models and NoPE Granite, else train.seq_len
};

struct GgufExportReport {
  GgufArch arch = GgufArch::mamba;
  int64_t tensors = 0;
  uint64_t bytes = 0;  // the file's size
  std::map<io::GgmlType, int64_t> by_type;
  double seconds = 0;
};

// Writes `model` (built from `cfg`, weights loaded) and `tok` as a GGUF file at `out`, atomically.
GgufExportReport export_gguf(nn::Model& model, const Config& cfg, const data::Tokenizer& tok,
                             const std::filesystem::path& out, const GgufExportOptions& options);

}  // namespace magellano::train
