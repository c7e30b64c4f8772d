// Quantizing checkpoints, tensor by tensor: read one tensor, quantize it, append it to the
// output, free it, while the next tensor is read on another thread. Peak memory is about two
// tensors on the host (the current and the next) and, for NF4, one on the device.
//
// Two formats:
//   nf4   NF4 with double quantization on the device, in transformers' bitsandbytes 4-bit keys
//         (io/nf4_safetensors.hpp); config.json gains bitsandbytes' quantization_config.
//   int4  symmetric int4 in groups of `group_size` input columns with fp16 (bf16 for bf16
//         weights) scales, on the host's threads (blocks of rows; the output does not depend
//         on their number), in compressed-tensors' pack-quantized format
//         (io/int4_safetensors.hpp); config.json gains llm-compressor's quantization_config.
// Which tensors: 2-D, floating point (F32, F16, BF16), name ending in ".weight", and not an
// embedding, a norm or the output head (names containing "embed", "norm" or "lm_head", which
// transformers also keeps unquantized); for int4 also only those whose input width (last dim)
// the group size divides, as compressed-tensors requires. Everything else is copied byte for byte.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "magellano/io/safetensors.hpp"
#include "magellano/ops/nf4.hpp"

namespace magellano::io {

bool should_quantize(const std::string& name, StDType dtype, const std::vector<int64_t>& shape);

enum class QuantFormat { nf4, int4 };
const char* quant_format_name(QuantFormat f);  // "nf4", "int4"

struct QuantizeOptions {
  QuantFormat format = QuantFormat::nf4;
  int64_t group_size = 128;  // int4: input columns per scale (a positive integer)
  unsigned threads = 0;      // int4: host threads quantizing (0: std::thread::hardware_concurrency())
};

struct QuantizeReport {
  int64_t tensors_quantized = 0, tensors_copied = 0;
  int64_t params_quantized = 0;      // elements of the quantized weights
  uint64_t quantized_bytes = 0;      // bytes of their quantized tensors (all parts each)
  uint64_t bytes_in = 0, bytes_out = 0;  // sizes of the input and output .safetensors
  ops::NF4Error error;               // over every quantized weight (either format)
  double seconds = 0, quantize_seconds = 0, write_seconds = 0;
  double read_seconds = 0;  // waiting for reads that did not overlap the device work
  std::vector<std::string> skipped_linear;  // 2-D ".weight" tensors kept unquantized (e.g. lm_head)
  std::vector<std::string> group_misfits;   // int4: of those, the ones whose width the group size does not divide
  double bits_per_param() const {
    return params_quantized ? 8.0 * static_cast<double>(quantized_bytes) / params_quantized : 0.0;
  }
};

// `progress` (optional) is called after each tensor with its name and whether it was quantized.
using QuantizeProgress = std::function<void(const std::string& name, bool quantized)>;

// FILE.safetensors -> out (a new file). Throws magellano::Error when `in` is missing, truncated
// or not safetensors, or `out` exists; nothing is left at `out` on failure.
// Throws for an int4 group size that is not positive.
QuantizeReport quantize_safetensors_file(Context& ctx, const std::filesystem::path& in,
                                         const std::filesystem::path& out,
                                         const QuantizeProgress& progress = {},
                                         const QuantizeOptions& options = {});

// CHECKPOINT_DIR (with model.safetensors, or a sharded model.safetensors.index.json and its
// shards, io/safetensors_set.hpp; config.json and tokenizer files are copied) -> out (a new
// folder, written atomically, its weights one model.safetensors). The output config.json gains a "quantization_config" object
// as transformers writes one for bitsandbytes NF4 with double quantization (nf4), or as
// llm-compressor writes one for W4A16 (int4; "ignore" lists every 2-D weight kept dense, by its
// module name, and always "lm_head", which a tied output head leaves out of the file).
QuantizeReport quantize_checkpoint_dir(Context& ctx, const std::filesystem::path& in,
                                       const std::filesystem::path& out,
                                       const QuantizeProgress& progress = {},
                                       const QuantizeOptions& options = {});

// The "quantization_config" object recorded in a quantized checkpoint's config.json.
nlohmann::json nf4_quantization_config(const std::vector<std::string>& skipped_modules);

}  // namespace magellano::io
