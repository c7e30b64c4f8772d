// Causal self-attention with grouped-query heads and optional rotary positions, and its residual
// block, as the attention layers of Hugging Face's GraniteMoeHybrid and Jamba models (q/k/v/o
// projections without bias, names self_attn.{q,k,v,o}_proj there; mixer.{q,k,v,o}_proj here).
//
//   x: (B, L, D) → q = q_proj x (B, L, nH, d), k = k_proj x, v = v_proj x (B, L, nKV, d)
//   q, k ← rope(q, k) at positions 0..L-1 (NeoX pairing, θ = rope_theta; none when rope_theta = 0)
//   o = attention(q, k, v): causal, query head j reads kv head j / (nH / nKV), scores × scale
//   out = o_proj o (B, L, D)
// scale = 1/sqrt(d) unless set (Granite's attention_multiplier). d = head_dim (D / nH unless set).
// Decoding keeps k (after rope) and v in a paged cache (nn/kv_cache.hpp); a step costs one
// attention over the row's cached positions, and nothing else grows with position.
#pragma once
#include <optional>

#include "magellano/nn/kv_cache.hpp"
#include "magellano/nn/linear.hpp"
#include "magellano/nn/rmsnorm.hpp"
#include "magellano/ops/decode_gemv.hpp"

namespace magellano::nn {

struct AttentionConfig {
  int64_t dim = 0;       // D
  int64_t heads = 8;     // nH
  int64_t kv_heads = 0;  // nKV; 0 = heads (multi-head attention)
  int64_t head_dim = 0;  // d; 0 = D / nH
  double rope_theta = 10000.0;  // 0 = no positions (NoPE, as Jamba and Granite 4.0-H)
  // GLM's 2D positions (ops::rope_2d): each head's first half rotated by the position id, its
  // second half by the block id; ordinary text has ids (t, 0). Needs rope_theta > 0, d % 4 == 0.
  bool rope_2d = false;
  double scale = 0.0;           // 0 = 1/sqrt(d)
  float norm_eps = 1e-5f;
  int64_t num_layers = 1;  // o_proj is scaled by 1/sqrt(num_layers), as Mamba's out_proj

  int64_t kv() const { return kv_heads > 0 ? kv_heads : heads; }
  int64_t width() const { return head_dim > 0 ? head_dim : (heads > 0 ? dim / heads : 0); }
  float score_scale() const;
  // Throws one clear line unless the heads divide the width (without head_dim), kv_heads divides
  // heads and the head width is one the kernels run.
  void validate() const;
};

class Attention : public Module {
 public:
  Attention(Context& ctx, const AttentionConfig& cfg, Init& init);
  // x: (B, L, D) -> (B, L, D). With `cache`, rows [row, row + B) of it receive k and v at
  // positions 0..L-1 (a prefill; the cache's begin_prefill was called), as block `index`.
  // prefix: (B) i32 prefix lengths (prefix-LM: the first prefix[b] positions see each other);
  // undefined = causal. positions: (B, L, 2) i32 GLM ids with cfg.rope_2d (undefined: (t, 0));
  // ignored otherwise.
  Tensor forward(const Tensor& x, KvCache* cache = nullptr, size_t index = 0, int64_t row = 0,
                 const Tensor& prefix = Tensor(), const Tensor& positions = Tensor()) const;
  // One position for every row of the cache (its begin_step was called), no autograd:
  // x_t (B, D) -> (B, D). ids_2d: (B, 2) i32 GLM 2D ids of this position with cfg.rope_2d
  // (undefined: (its position, 0), ordinary text); ignored otherwise.
  Tensor step(const Tensor& x_t, KvCache& cache, size_t index, const Tensor& ids_2d = Tensor()) const;
  // The step up to o_proj: (B, D) -> the heads' outputs (B, nH d). With `fused`, q, k and v come
  // from ops::decode_gemv with those parts (the block's norm fused in), else from the Linears.
  Tensor step_projected(const Tensor& x_t, KvCache& cache, size_t index,
                        const std::optional<ops::DecodeGemvParts>& fused, const Tensor& ids_2d) const;
  void collect(const std::string& prefix, std::vector<Parameter>& out) const override;
  // q_proj, k_proj, v_proj, o_proj, each its own LoRA target kind.
  void collect_linears(const std::string& prefix, std::vector<NamedLinear>& out) override;

  AttentionConfig cfg;
  Linear q_proj, k_proj, v_proj, o_proj;  // (nH d, D), (nKV d, D), (nKV d, D), (D, nH d)
};

// x + residual_scale · attention(RMSNorm(x)); the residual stream stays fp32.
class AttentionBlock : public Module {
 public:
  AttentionBlock(Context& ctx, const AttentionConfig& cfg, Init& init);
  Tensor forward(const Tensor& x, KvCache* cache = nullptr, size_t index = 0, int64_t row = 0,
                 const Tensor& prefix = Tensor(), const Tensor& positions = Tensor()) const;
  // One position (no autograd). The fused decode path (nn/decode_path.hpp) where the weights allow
  // it: q, k, v with the norm in their products, o_proj with the residual; else the composed ops.
  Tensor step(const Tensor& x_t, KvCache& cache, size_t index, const Tensor& ids_2d = Tensor()) const;
  bool fused_step(const Tensor& x_t) const;
  void collect(const std::string& prefix, std::vector<Parameter>& out) const override;
  void collect_linears(const std::string& prefix, std::vector<NamedLinear>& out) override;
  RMSNorm norm;
  Attention mixer;
  float residual_scale = 1.0f;
};

}  // namespace magellano::nn
