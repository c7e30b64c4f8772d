// Which decoding step Model::step runs. The fused path (on by default) steps a Mamba block in four
// launches (ops::decode_gemv_conv: the norm, in_proj and the conv step; ops::decode_gemv for x_proj
// and for out_proj with the residual; ops::mamba_ssm_step), a MoE block in three with no host read
// (ops::moe_decode_*), an attention block's q, k and v with its norm and o_proj with the residual
// through ops::decode_gemv (rope, the cache write and the attention between them as unfused), and
// the final norm with the LM head in one; the unfused path composes the training ops (Mamba's ~15
// launches, the MoE's read of its expert offsets, Linear::forward's GEMMs for attention). Both give
// the same results to fp32 rounding.
// A block takes the fused path where its layers allow it (decode_linear): f32 weights, or int4 ones
// in groups of a multiple of 32 for the Linears that go through ops::decode_gemv (Mamba's in_proj,
// x_proj and out_proj, attention's and the dense MLP's projections; fused_linear: f32 only, for
// the kernels that read a weight themselves: dt_proj, the MoE's, the LM head; an int4 dt_proj is
// dequantized once per decode state, MambaState::dt_w), without LoRA
// adapters, no Jamba inner norms, at most ops::kDecodeGemvRows rows; elsewhere it steps as before.
// MAGELLANO_FUSED_DECODE=0 turns the fused path off for the process; tests set it per scope.
#pragma once
#include <optional>

#include "magellano/nn/linear.hpp"
#include "magellano/ops/decode_gemv.hpp"

namespace magellano::nn {

bool fused_decode();
// Forces the fused path on or off; nullopt: back to MAGELLANO_FUSED_DECODE (default on).
void force_fused_decode(std::optional<bool> on);

// The weight a fused decode kernel reads directly: an f32 base weight without an adapter.
inline bool fused_linear(const Linear& l) {
  return !l.lora && l.storage() == WeightStorage::f32 && l.weight.defined() && l.weight.dtype() == DType::f32;
}
// An int4 base weight without an adapter.
inline bool plain_int4(const Linear& l) { return !l.lora && l.storage() == WeightStorage::int4 && l.int4; }
// The weight ops::decode_gemv reads: fused_linear's, or an int4 base in groups of a multiple of 32.
bool decode_linear(const Linear& l);
// ops::decode_gemv / decode_gemv_conv with l's base weight (decode_linear(l) holds).
Tensor decode_gemv(const Linear& l, const Tensor& x, const ops::DecodeGemvParts& parts = {});
ops::DecodeGemvConvOut decode_gemv_conv(const Linear& l, const Tensor& x, const ops::DecodeGemvParts& parts,
                                        const ops::DecodeConv& conv);

}  // namespace magellano::nn
