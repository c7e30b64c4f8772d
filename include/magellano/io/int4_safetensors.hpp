// Group-wise int4 weights in safetensors files, in the compressed-tensors "pack-quantized" format
// that llm-compressor writes for its W4A16 scheme and that vLLM and transformers read. The
// arithmetic (scales, codes, packing) is quant/int4_group.hpp.
//
// What the format is, read from compressed-tensors' source: the 0.20.1 release (its wheel from
// PyPI, 2026; paths below are inside it) and, where it differs, git 52792be (Oct 2025, 0.12.2,
// src/compressed_tensors/...); vLLM and transformers as noted.
//
//   tensors of a quantized Linear whose weight is "X.weight" (out, in); "X.weight" itself is gone:
//     X.weight_packed  I32 [out, ceil(in / 8)]   compressors/pack_quantized/helpers.py
//                      pack_to_int32(packed_dim=1): code + 8 as unsigned 4 bits, column c of a row in
//                      word c / 8 at bit 4 (c % 8) (the first column lowest; 0.20 packs any num_bits
//                      densely in runs of 32 values, which for 4 bits is this same layout), a row's
//                      last word padded with 0 bits; unpack_from_int32 drops the padding using
//                      weight_shape.
//     X.weight_scale   the weight's float dtype [out, in / group_size]   (no zero point: symmetric
//                      schemes save none, PackedQuantizationCompressor.compression_param_names)
//     X.weight_shape   I64 [2] = [out, in]   compress() writes torch.tensor(weight.shape), an int64
//                      tensor (0.12's compression_param_info says int32; vLLM's CompressedTensorsWNA16
//                      allocates int64). We write I64 and read I32 or I64.
//   scale        quantization/utils/helpers.py calculate_qparams, symmetric: max(|min|, |max|) /
//                (bit_range / 2), bit_range = q_max - q_min = 7 - (-8) = 15 (calculate_range), i.e.
//                / 7.5 in the weight's dtype; a scale of exactly 0 becomes torch.finfo(dtype).eps
//                (0.12: torch.clamp(min=finfo(float32).eps) on every scale).
//   code         quantization/lifecycle/forward_helpers.py _quantize: x / scale in x's dtype, then
//                round_to_quantized_type_args (quant_args.py): torch.clamp to [-8, 7], torch.round
//                (halves to even), cast to int8.
//   dequantize   forward_helpers.py _dequantize: x_q.to(scale.dtype) * scale, in the scale's dtype
//                (0.20 passes the scheme's args; 0.12's decompress_weight inferred group_size =
//                in / scale.shape[1] from the shapes, which is what we do: the two agree on every
//                file either writes). transformers 5 loads with dequantize=True through this same
//                decompressor; its default (decompressing on the first forward) first copies the
//                scales into parameters of the model's dtype, so for an fp32 model with our fp16
//                scales it keeps code * scale unrounded (a difference of at most 2^-11 relative).
//   group width  forward_helpers.py _process_group raises "tensor column shape must be divisble by
//                the given group_size" unless group_size divides in (0.12 also, for in >= group_size,
//                and failed to unflatten in < group_size), so every weight compressed-tensors writes
//                has in % group_size == 0. llm-compressor's answer (its issue 1983, pull request
//                2353) is to list such layers in "ignore"; Magellano does that: a weight whose
//                width the group size does not divide stays unquantized and is listed in "ignore".
//                A width that is not a multiple of 8 (with a group size that is not) pads the last
//                word of each row as above.
//   group_size   quantization/quant_args.py: any positive integer for strategy "group" (-1 means
//                "channel"; 0 and other negatives are refused). vLLM's Marlin kernels take 32, 64
//                and 128 and need in % 128 == 0 besides; 128 is the W4A16 preset (quant_scheme.py).
//   config.json  compressors/model_compressors/model_compressor.py update_config: json.dump(sort_keys)
//                of "quantization_config" = {version, quant_method "compressed-tensors",
//                sparsity_config {}, transform_config {}, and QuantizationConfig.model_dump()
//                (quant_config.py): config_groups {"group_0": QuantizationScheme (quant_scheme.py:
//                targets ["Linear"], weights, input_activations null, output_activations null,
//                format "pack-quantized", as compressors/format.py infers for int4 weight-only)},
//                kv_cache_scheme null, moe_sparsity_config null, format "pack-quantized",
//                quantization_status "compressed", global_compression_ratio null, ignore [module
//                names kept dense, e.g. "lm_head"]}. QuantizationArgs' serializer (0.20) writes
//                num_bits, type, symmetric, group_size, strategy, dynamic and the observer that
//                llm-compressor (0.14, modifiers/quantization/quantization/mixin.py) sets for
//                weights, "memoryless_minmax" (observers/min_max.py: min and max of each group, then
//                calculate_qparams), and omits the fields left unset (actorder, block_structure,
//                scale_dtype, zp_dtype, observer_kwargs), so 0.12 (whose QuantizationArgs forbid
//                unknown keys) reads it too.
//   loading      transformers' quantizers/quantizer_compressed_tensors.py: the checkpoint is
//                compressed when quantization_status is "compressed"; the compressor decompresses
//                each targeted Linear not in "ignore" from weight_packed / weight_scale / weight_shape.
//
// Scales: Magellano writes them as F16 for F32 and F16 weights (llm-compressor keeps an fp32
// model's scales in fp32; the issue asks for fp16, vLLM casts scales to the model's dtype at
// load anyway, and compressed-tensors' own scale_dtype = float16 computes them as we do) and
// BF16 for BF16 weights (as llm-compressor does); it reads F16, BF16 and F32.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "magellano/io/safetensors.hpp"
#include "magellano/io/safetensors_set.hpp"
#include "magellano/io/safetensors_stream.hpp"
#include "magellano/quant/int4_group.hpp"
#include "magellano/tensor/tensor.hpp"

namespace magellano::io {

// The compressed-tensors release whose layout and config keys we write.
constexpr const char* kCompressedTensorsVersion = "0.20.1";
constexpr int64_t kInt4DefaultGroupSize = 128;

// "X.weight" -> "X.weight_packed", "X.weight_scale", "X.weight_shape".
std::string int4_packed_name(const std::string& weight);
std::string int4_scale_name(const std::string& weight);
std::string int4_shape_name(const std::string& weight);

// The float type of a safetensors dtype (F32, F16, BF16; anything else throws).
quant::FloatType float_type_of(StDType t);
// The dtype Magellano stores a weight of dtype `weight`'s scales in: BF16 for BF16, else F16.
StDType int4_scale_dtype(StDType weight);

// The three entries of weight `name` (out, in) quantized with `group_size`, in the order
// int4_to_st writes them (packed, scale, shape).
std::vector<StEntry> int4_entries(const std::string& name, const std::vector<int64_t>& shape, int64_t group_size,
                                  StDType scale_dtype);
// Those three tensors for q.
std::vector<std::pair<std::string, StTensor>> int4_to_st(const std::string& name, const quant::Int4Weight& q);

// These read a set of files (a checkpoint's one file or its shards; the three parts may lie in
// different shards) or one file.
// True when weight `name` ("X.weight") is stored as int4 (the set has "X.weight_packed").
bool is_int4_weight(const SafetensorsSet& weights, const std::string& name);
// The names ("X.weight") of every int4 weight, in data order.
std::vector<std::string> int4_weight_names(const SafetensorsSet& weights);
// True when the set holds `name` as a tensor or as an int4 weight.
bool holds_weight(const SafetensorsSet& weights, const std::string& name);

// Reads int4 weight `name`, checked. Throws magellano::Error (one line naming the file holding
// it and the weight) for a missing weight_scale or weight_shape, a weight_zero_point or
// weight_g_idx (asymmetric or activation-ordered weights, which Magellano does not read),
// dtypes other than I32 / a float / I32 or I64, or shapes that disagree with weight_shape.
quant::Int4Weight load_int4(const SafetensorsSet& weights, const std::string& name);
// Its values (out * in, row-major), dequantized as compressed-tensors does.
std::vector<float> load_int4_f32(const SafetensorsSet& weights, const std::string& name);
// Rows [row_begin, row_end) of it (row_end < 0: to the last) into dst (f32 or f16), whose shape
// must hold exactly those rows (e.g. one part of a packed weight of a Hugging Face hybrid).
void load_int4_into(const SafetensorsSet& weights, const std::string& name, const Tensor& dst,
                    int64_t row_begin = 0, int64_t row_end = -1);

// The "quantization_config" llm-compressor writes for W4A16 with `group_size`; `ignore` are the
// module names (no ".weight") of the Linear layers kept dense.
nlohmann::json int4_quantization_config(int64_t group_size, const std::vector<std::string>& ignore);

// Checks the "quantization_config" of a checkpoint's config.json (the whole config object):
// none, bitsandbytes (NF4, read by io/nf4_safetensors.hpp), or compressed-tensors pack-quantized
// symmetric int4 group weights with nothing else quantized (no activations, KV cache, sparsity or
// transforms) and status "compressed". Anything else throws one line naming `where` and what
// Magellano does not read (e.g. 8-bit, asymmetric, channel-wise, activation-ordered).
void check_quantization_config(const nlohmann::json& config, const std::string& where);
// The same for dir/config.json when it exists (Python's Infinity allowed, as in Mamba2 configs).
void check_quantization_config(const std::filesystem::path& dir);

}  // namespace magellano::io
