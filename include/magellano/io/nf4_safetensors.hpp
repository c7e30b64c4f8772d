// NF4 weights in safetensors files, with the keys transformers uses for bitsandbytes 4-bit
// Linear layers (Linear4bit._save_to_state_dict), so either side can read the other's files:
//
//   <name>                                     U8  [ceil(n/2), 1]  packed codes
//   <name>.absmax                              U8  [n_blocks]      nested 8-bit codes
//   <name>.quant_map                           F32 [16]            the NF4 code book
//   <name>.nested_absmax                       F32 [n_nested]      one scale per 256 absmax
//   <name>.nested_quant_map                    F32 [256]           the dynamic map
//   <name>.quant_state.bitsandbytes__nf4       U8  [len]           UTF-8 JSON:
//       {"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [out, in],
//        "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": <offset>}
// (bitsandbytes writes nested_offset with Python's repr; we write it with a fixed-width
// "%.8e", 9 significant digits, which round-trips fp32 and keeps the JSON's length known
// before quantizing, as the streaming writer needs.)
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "magellano/io/safetensors.hpp"
#include "magellano/io/safetensors_set.hpp"
#include "magellano/io/safetensors_stream.hpp"
#include "magellano/ops/nf4.hpp"

namespace magellano::io {

constexpr const char* kNF4QuantStateSuffix = ".quant_state.bitsandbytes__nf4";

// The quant-state JSON for a weight of `shape` ("float32" etc. as `dtype`: the dtype the weight
// had before quantization, which bitsandbytes dequantizes to).
std::string nf4_quant_state_json(const std::vector<int64_t>& shape, float offset,
                                 const std::string& dtype = "float32");

// The six entries of one NF4 weight called `name`, in the order nf4_to_st writes them.
std::vector<StEntry> nf4_entries(const std::string& name, const std::vector<int64_t>& shape,
                                 const std::string& dtype = "float32");

// The six tensors of `w` (downloaded from the device), named as above.
std::vector<std::pair<std::string, StTensor>> nf4_to_st(const std::string& name,
                                                        const ops::NF4Weight& w,
                                                        const std::string& dtype = "float32");

// These read a set of files (io/safetensors_set.hpp: a checkpoint's one file or its shards; the
// six parts of one weight may lie in different shards) or one file.
// True when `name` is stored as an NF4 weight (it has <name>.quant_state.bitsandbytes__nf4).
bool is_nf4_weight(const SafetensorsSet& weights, const std::string& name);
bool is_nf4_weight(const SafetensorsReader& reader, const std::string& name);
// The names of every NF4 weight, in data order (shard by shard).
std::vector<std::string> nf4_weight_names(const SafetensorsSet& weights);
std::vector<std::string> nf4_weight_names(const SafetensorsReader& reader);

// Loads NF4 weight `name` onto ctx's device. Throws magellano::Error (one line naming the file
// holding the weight and the tensor) for a missing part, a quant state that is not NF4 with
// blocksize 64 and nested blocksize 256 (or not double-quantized), or sizes that disagree with its shape.
ops::NF4Weight load_nf4(Context& ctx, const SafetensorsSet& weights, const std::string& name,
                        MemCategory category = MemCategory::parameters);
ops::NF4Weight load_nf4(Context& ctx, const SafetensorsReader& reader, const std::string& name,
                        MemCategory category = MemCategory::parameters);

}  // namespace magellano::io
