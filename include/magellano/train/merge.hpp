// Merging a LoRA adapter into its base model's weights: W' = W + (alpha / r) · B · A for every
// adapted Linear, all other tensors copied unchanged. `magellano merge-adapter`.
//
// The base is a checkpoint directory (Magellano or Hugging Face Mamba: config.json +
// model.safetensors). Weights stored F32 stay F32; F16 / BF16 weights are widened to F32 for
// the addition and written back F32. NF4 weights (`magellano quantize` output, bitsandbytes
// keys) are dequantized, W + ΔW is formed in fp32 and quantized again; the report gives the
// error of that re-quantization (mean and max |dequant(requant(W')) − W'|). int4 weights
// (compressed-tensors pack-quantized) likewise: dequantized, merged in fp32 and quantized again
// in the file's group size and scale type (quant::quantize_int4), written as the same three tensors. The product B·A runs on the device (one GEMM per weight,
// one tensor in memory at a time on the device). The output directory gets config.json (copied)
// and model.safetensors.
#pragma once
#include <cstdint>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "magellano/tensor/tensor.hpp"

namespace magellano::train {

struct MergeReport {
  int64_t merged = 0;          // weights that received an adapter
  int64_t copied = 0;          // tensors copied unchanged
  double max_abs_delta = 0;    // largest |(alpha / r) · (B·A)| element added
  double mean_abs_delta = 0;   // over the merged weights' elements
  bool requantized = false;    // the base was NF4 or int4 (weights re-quantized after the addition)
  double requant_mean_abs_error = 0;  // NF4 / int4: mean |dequant(requant(W')) − W'|
  double requant_max_abs_error = 0;
  double seconds = 0;
  nlohmann::json to_json() const;
};

MergeReport merge_adapter(const std::filesystem::path& base_dir, const std::filesystem::path& adapter_dir,
                          const std::filesystem::path& out_dir, Context& ctx);

}  // namespace magellano::train
