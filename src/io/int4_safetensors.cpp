#include "magellano/io/int4_safetensors.hpp"

#include <cmath>
#include <cstring>

#include "magellano/io/hf_json.hpp"
#include "magellano/io/safetensors_device.hpp"
#include "magellano/runtime/error.hpp"
#include "magellano/runtime/json_parse.hpp"

namespace magellano::io {

namespace fs = std::filesystem;

namespace {

constexpr const char* kPacked = "_packed";
constexpr const char* kReads =
    "Magellano reads compressed-tensors int4 weights only (num_bits 4, type int, symmetric, strategy group: "
    "llm-compressor's W4A16), in the pack-quantized format.";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

std::string int4_packed_name(const std::string& weight) { return weight + kPacked; }
std::string int4_scale_name(const std::string& weight) { return weight + "_scale"; }
std::string int4_shape_name(const std::string& weight) { return weight + "_shape"; }

quant::FloatType float_type_of(StDType t) {
  switch (t) {
    case StDType::F32: return quant::FloatType::f32;
    case StDType::F16: return quant::FloatType::f16;
    case StDType::BF16: return quant::FloatType::bf16;
    default: throw Error(std::string("int4: ") + st_dtype_name(t) + " is not a float dtype.");
  }
}

StDType int4_scale_dtype(StDType weight) { return weight == StDType::BF16 ? StDType::BF16 : StDType::F16; }

std::vector<StEntry> int4_entries(const std::string& name, const std::vector<int64_t>& shape, int64_t group_size,
                                  StDType scale_dtype) {
  if (shape.size() != 2 || group_size <= 0 || shape[1] % group_size != 0)
    throw Error("int4: weight '" + name + "' " + st_shape_str(shape) + " cannot be stored in groups of " +
                std::to_string(group_size) + ".");
  return {{int4_packed_name(name), StDType::I32, {shape[0], ceil_div(shape[1], quant::kInt4PerWord)}},
          {int4_scale_name(name), scale_dtype, {shape[0], shape[1] / group_size}},
          {int4_shape_name(name), StDType::I64, {2}}};
}

std::vector<std::pair<std::string, StTensor>> int4_to_st(const std::string& name, const quant::Int4Weight& q) {
  std::vector<std::pair<std::string, StTensor>> out;
  StTensor packed{StDType::I32, {q.rows, q.words_per_row()}, std::vector<uint8_t>(q.packed.size() * 4)};
  std::memcpy(packed.bytes.data(), q.packed.data(), packed.bytes.size());  // little-endian hosts
  out.emplace_back(int4_packed_name(name), std::move(packed));
  StTensor scale;
  scale.shape = {q.rows, q.groups_per_row()};
  switch (q.scale_type) {
    case quant::FloatType::f32:
      scale.dtype = StDType::F32;
      scale.bytes.resize(q.scales.size() * 4);
      std::memcpy(scale.bytes.data(), q.scales.data(), scale.bytes.size());
      break;
    case quant::FloatType::f16:
    case quant::FloatType::bf16: {
      const bool half = q.scale_type == quant::FloatType::f16;
      scale.dtype = half ? StDType::F16 : StDType::BF16;
      scale.bytes.resize(q.scales.size() * 2);
      for (size_t i = 0; i < q.scales.size(); ++i) {
        const uint16_t h = half ? f32_to_f16(q.scales[i]) : f32_to_bf16(q.scales[i]);  // exact: the scales are of that type
        std::memcpy(scale.bytes.data() + 2 * i, &h, 2);
      }
      break;
    }
  }
  out.emplace_back(int4_scale_name(name), std::move(scale));
  StTensor shape{StDType::I64, {2}, std::vector<uint8_t>(16)};
  const int64_t dims[2] = {q.rows, q.cols};
  std::memcpy(shape.bytes.data(), dims, 16);
  out.emplace_back(int4_shape_name(name), std::move(shape));
  return out;
}

bool is_int4_weight(const SafetensorsSet& weights, const std::string& name) {
  return weights.contains(int4_packed_name(name));
}

std::vector<std::string> int4_weight_names(const SafetensorsSet& weights) {
  std::vector<std::string> out;
  for (const std::string& n : weights.names())
    if (ends_with(n, std::string("weight") + kPacked)) out.push_back(n.substr(0, n.size() - std::string(kPacked).size()));
  return out;
}

bool holds_weight(const SafetensorsSet& weights, const std::string& name) {
  return weights.contains(name) || is_int4_weight(weights, name);
}

quant::Int4Weight load_int4(const SafetensorsSet& weights, const std::string& name) {
  const std::string packed_name = int4_packed_name(name), scale_name = int4_scale_name(name),
                    shape_name = int4_shape_name(name);
  const std::string where = weights.contains(packed_name) ? weights.reader(packed_name).path().string()
                                                          : weights.path().string();
  const std::string what = where + ": int4 weight '" + excerpt(name) + "'";
  const auto fail = [&what](const std::string& msg) -> void { throw Error(what + " " + msg); };
  for (const std::string& part : {packed_name, scale_name, shape_name})
    if (!weights.contains(part)) fail("is missing '" + excerpt(part) + "'. Is the file complete?");
  if (weights.contains(name + "_zero_point"))
    fail("has a weight_zero_point: it is asymmetric int4, which Magellano does not read. " + std::string(kReads));
  if (weights.contains(name + "_g_idx"))
    fail("has a weight_g_idx (activation ordering), which Magellano does not read. " + std::string(kReads));

  const StDType pd = weights.dtype(packed_name), sd = weights.dtype(scale_name), hd = weights.dtype(shape_name);
  if (pd != StDType::I32)
    fail("has '" + excerpt(packed_name) + "' stored as " + st_dtype_name(pd) + ", expected I32 (eight 4-bit values each).");
  if (sd != StDType::F16 && sd != StDType::BF16 && sd != StDType::F32)
    fail("has '" + excerpt(scale_name) + "' stored as " + st_dtype_name(sd) + ", expected F16, BF16 or F32.");
  if (hd != StDType::I64 && hd != StDType::I32)
    fail("has '" + excerpt(shape_name) + "' stored as " + st_dtype_name(hd) + ", expected I64 or I32.");
  if (weights.shape(shape_name) != std::vector<int64_t>{2})
    fail("has '" + excerpt(shape_name) + "' of shape " + st_shape_str(weights.shape(shape_name)) +
         ", expected [2] (out, in).");
  const StTensor st_shape = weights.read(shape_name);
  int64_t rows = 0, cols = 0;
  if (hd == StDType::I64) {
    std::memcpy(&rows, st_shape.bytes.data(), 8);
    std::memcpy(&cols, st_shape.bytes.data() + 8, 8);
  } else {
    int32_t d[2];
    std::memcpy(d, st_shape.bytes.data(), 8);
    rows = d[0], cols = d[1];
  }
  const std::string dims = "[" + std::to_string(rows) + ", " + std::to_string(cols) + "]";
  // Both at most 2^31 - 1, so that rows * cols cannot overflow.
  if (rows <= 0 || cols <= 0 || rows > INT32_MAX || cols > INT32_MAX)
    fail("has weight_shape " + dims + "; expected two positive sizes.");
  const std::vector<int64_t> want_packed{rows, ceil_div(cols, quant::kInt4PerWord)};
  if (weights.shape(packed_name) != want_packed)
    fail("has weight_packed of shape " + st_shape_str(weights.shape(packed_name)) + " but weight_shape " + dims +
         " needs " + st_shape_str(want_packed) + ".");
  const std::vector<int64_t> ss = weights.shape(scale_name);
  if (ss.size() != 2 || ss[0] != rows || ss[1] <= 0 || cols % ss[1] != 0)
    fail("has weight_scale of shape " + st_shape_str(ss) + ", which does not split weight_shape " + dims +
         " into groups of whole columns (expected [" + std::to_string(rows) + ", in / group_size]).");

  quant::Int4Weight q;
  q.rows = rows, q.cols = cols, q.group_size = cols / ss[1];  // as compressed-tensors infers it
  q.scale_type = float_type_of(sd);
  q.packed.resize(static_cast<size_t>(rows * q.words_per_row()));
  weights.read_into(packed_name, q.packed.data(), q.packed.size() * 4);  // little-endian hosts
  q.scales = weights.read_f32(scale_name);
  require_finite(q.scales, what + " weight_scale");
  return q;
}

std::vector<float> load_int4_f32(const SafetensorsSet& weights, const std::string& name) {
  return quant::dequantize_int4(load_int4(weights, name));
}

void load_int4_into(const SafetensorsSet& weights, const std::string& name, const Tensor& dst, int64_t row_begin,
                    int64_t row_end) {
  const quant::Int4Weight q = load_int4(weights, name);
  const bool whole = row_begin == 0 && row_end < 0;
  if (row_end < 0) row_end = q.rows;
  const std::string where = "loading int4 weight '" + name + "' from " + weights.reader(int4_packed_name(name)).path().string() + ": ";
  if (whole ? dst.shape() != Shape{q.rows, q.cols}
            : (row_begin < 0 || row_begin >= row_end || row_end > q.rows || dst.shape().dims().back() != q.cols ||
               dst.numel() != (row_end - row_begin) * q.cols))
    throw Error(where + "its shape [" + std::to_string(q.rows) + ", " + std::to_string(q.cols) + "]" +
                (whole ? "" : " rows [" + std::to_string(row_begin) + ", " + std::to_string(row_end) + ")") +
                " does not give the model's " + dst.shape().str() + ".");
  if (dst.dtype() != DType::f32 && dst.dtype() != DType::f16)
    throw Error(where + "the model's tensor is neither f32 nor f16.");
  const int64_t rows = row_end - row_begin;
  std::vector<float> v(static_cast<size_t>(rows * q.cols));
  quant::dequantize_int4(q.packed.data() + row_begin * q.words_per_row(), q.scales.data() + row_begin * q.groups_per_row(),
                         rows, q.cols, q.group_size, q.scale_type, v.data());
  Tensor t = dst;  // copy_from_host is non-const on the handle; the buffer is shared
  if (dst.dtype() == DType::f32) {
    t.copy_from_host(v.data(), v.size() * sizeof(float));
    return;
  }
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = f32_to_f16(v[i]);
  t.copy_from_host(h.data(), h.size() * 2);
}

nlohmann::json int4_quantization_config(int64_t group_size, const std::vector<std::string>& ignore) {
  // QuantizationArgs.model_dump() of the W4A16 preset as llm-compressor 0.14's QuantizationModifier
  // leaves it (it sets the weights' observer to "memoryless_minmax", the min-max rule we follow;
  // compressed-tensors 0.20 omits the fields left unset), the scheme, QuantizationConfig.model_dump()
  // and the keys ModelCompressor.update_config adds. nlohmann sorts keys, as update_config's json.dump does.
  const nlohmann::json weights = {{"dynamic", false},  {"group_size", group_size}, {"num_bits", 4},
                                  {"observer", "memoryless_minmax"}, {"strategy", "group"},
                                  {"symmetric", true}, {"type", "int"}};
  const nlohmann::json scheme = {{"format", "pack-quantized"},   {"input_activations", nullptr},
                                 {"output_activations", nullptr}, {"targets", {"Linear"}},
                                 {"weights", weights}};
  return {{"config_groups", {{"group_0", scheme}}},
          {"format", "pack-quantized"},
          {"global_compression_ratio", nullptr},
          {"ignore", ignore},
          {"kv_cache_scheme", nullptr},
          {"moe_sparsity_config", nullptr},
          {"quant_method", "compressed-tensors"},
          {"quantization_status", "compressed"},
          {"sparsity_config", nlohmann::json::object()},
          {"transform_config", nlohmann::json::object()},
          {"version", kCompressedTensorsVersion}};
}

void check_quantization_config(const nlohmann::json& config, const std::string& where) {
  if (!config.is_object() || !config.contains("quantization_config")) return;
  const nlohmann::json& q = config.at("quantization_config");
  const std::string at = where + ": quantization_config";
  const auto fail = [&](const std::string& msg) { throw Error(at + " " + msg); };
  if (!q.is_object()) fail("is " + json_excerpt(q) + ", not an object.");
  const nlohmann::json method = q.value("quant_method", nlohmann::json());
  if (method == "bitsandbytes") return;  // NF4: io/nf4_safetensors.hpp checks each weight's quant state
  if (method != "compressed-tensors")
    fail("has quant_method " + json_excerpt(method) + "; Magellano reads \"bitsandbytes\" (NF4, from `magellano "
         "quantize --format nf4`) and \"compressed-tensors\" (int4, `--format int4`) checkpoints.");
  const auto empty = [](const nlohmann::json& j) { return j.is_null() || (j.is_object() && j.empty()); };
  const nlohmann::json status = q.value("quantization_status", nlohmann::json());
  if (status != "compressed")
    fail("has quantization_status " + json_excerpt(status) + ": the weights are not stored compressed. " + kReads);
  if (!empty(q.value("kv_cache_scheme", nlohmann::json())))
    fail("quantizes the KV cache (kv_cache_scheme), which Magellano does not. " + std::string(kReads));
  const nlohmann::json sparsity = q.value("sparsity_config", nlohmann::json());
  if (!empty(sparsity) && !(sparsity.is_object() && sparsity.value("format", nlohmann::json()) == "dense"))
    fail("has a sparsity_config (sparse weights), which Magellano does not read. " + std::string(kReads));
  if (!empty(q.value("transform_config", nlohmann::json())))
    fail("has a transform_config (rotated weights), which Magellano does not read. " + std::string(kReads));
  const nlohmann::json format = q.value("format", nlohmann::json());
  const nlohmann::json& groups = q.value("config_groups", nlohmann::json());
  if (!groups.is_object() || groups.empty()) fail("has no config_groups. " + std::string(kReads));
  for (const auto& [gname, scheme] : groups.items()) {
    const std::string g = "group '" + excerpt(gname) + "' ";
    if (scheme.is_array()) {  // a preset name mapped to its targets
      if (gname != "W4A16") fail(g + "is the preset " + json_excerpt(gname) + ". " + kReads);
      if (format != "pack-quantized") fail("has format " + json_excerpt(format) + ", not \"pack-quantized\". " + kReads);
      continue;
    }
    if (!scheme.is_object()) fail(g + "is " + json_excerpt(scheme) + ", not an object.");
    const nlohmann::json f = scheme.contains("format") && !scheme.at("format").is_null() ? scheme.at("format") : format;
    if (f != "pack-quantized") fail(g + "has format " + json_excerpt(f) + ", not \"pack-quantized\". " + kReads);
    for (const char* act : {"input_activations", "output_activations"})
      if (!empty(scheme.value(act, nlohmann::json())))
        fail(g + "quantizes " + act + ", which Magellano does not. " + kReads);
    const nlohmann::json w = scheme.value("weights", nlohmann::json());
    if (!w.is_object()) fail(g + "has no weights. " + std::string(kReads));
    const auto field = [&](const char* key) { return w.value(key, nlohmann::json()); };
    if (field("num_bits") != 4) fail(g + "has weights of num_bits " + json_excerpt(field("num_bits")) + ". " + kReads);
    if (field("type") != "int") fail(g + "has weights of type " + json_excerpt(field("type")) + ". " + kReads);
    if (field("symmetric") != true)
      fail(g + "has asymmetric weights (symmetric " + json_excerpt(field("symmetric")) + "). " + kReads);
    if (field("strategy") != "group") fail(g + "has weights of strategy " + json_excerpt(field("strategy")) + ". " + kReads);
    const nlohmann::json gs = field("group_size");
    if (!gs.is_number_integer() || gs.get<int64_t>() <= 0)
      fail(g + "has weights of group_size " + json_excerpt(gs) + "; expected a positive integer.");
    const nlohmann::json order = field("actorder");
    if (!(order.is_null() || order == false || order == "weight" || order == "static"))
      fail(g + "has weights of actorder " + json_excerpt(order) + " (activation ordering, which stores weight_g_idx). " + kReads);
    const nlohmann::json dynamic = field("dynamic");
    if (!(dynamic.is_null() || dynamic == false)) fail(g + "has dynamic weights. " + std::string(kReads));
  }
}

void check_quantization_config(const fs::path& dir) {
  const fs::path file = dir / "config.json";
  if (!fs::is_regular_file(file)) return;
  check_quantization_config(read_hf_json(file, "checkpoint config"), file.string());
}

}  // namespace magellano::io
