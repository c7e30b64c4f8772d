#include "magellano/io/nf4_safetensors.hpp"

#include <cmath>
#include <cstdio>
#include <cstring>

#include <nlohmann/json.hpp>

#include "magellano/io/safetensors_device.hpp"
#include "magellano/runtime/error.hpp"
#include "magellano/runtime/json_parse.hpp"

namespace magellano::io {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

std::string shape_json(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

[[noreturn]] void fail_with(const std::string& what, const std::string& msg) {
  throw Error(what + " " + msg);
}

}  // namespace

std::string nf4_quant_state_json(const std::vector<int64_t>& shape, float offset,
                                 const std::string& dtype) {
  if (!std::isfinite(offset) || offset < 0.0f)
    throw Error("NF4 quant state: the offset (mean absmax) is " + std::to_string(offset) +
                "; the weight holds Inf or NaN values.");
  char number[32];
  std::snprintf(number, sizeof number, "%.8e", static_cast<double>(offset));
  // Keys and spacing as bitsandbytes' QuantState.as_dict + json.dumps write them.
  return "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"" + dtype +
         "\", \"shape\": " + shape_json(shape) +
         ", \"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": " +
         number + "}";
}

std::vector<StEntry> nf4_entries(const std::string& name, const std::vector<int64_t>& shape,
                                 const std::string& dtype) {
  const int64_t n = st_numel(shape), nb = ceil_div(n, ops::kNF4BlockSize);
  const int64_t json_len = static_cast<int64_t>(nf4_quant_state_json(shape, 0.0f, dtype).size());
  return {{name, StDType::U8, {ceil_div(n, 2), 1}},
          {name + ".absmax", StDType::U8, {nb}},
          {name + ".quant_map", StDType::F32, {16}},
          {name + ".nested_absmax", StDType::F32, {ceil_div(nb, ops::kNestedBlockSize)}},
          {name + ".nested_quant_map", StDType::F32, {256}},
          {name + kNF4QuantStateSuffix, StDType::U8, {json_len}}};
}

std::vector<std::pair<std::string, StTensor>> nf4_to_st(const std::string& name,
                                                        const ops::NF4Weight& w,
                                                        const std::string& dtype) {
  const std::vector<int64_t> shape = w.shape.dims();
  std::vector<std::pair<std::string, StTensor>> out;
  StTensor packed = to_st(w.packed);
  packed.shape = {packed.shape[0], 1};
  out.emplace_back(name, std::move(packed));
  out.emplace_back(name + ".absmax", to_st(w.absmax_q));
  out.emplace_back(name + ".quant_map", to_st(w.quant_map));
  out.emplace_back(name + ".nested_absmax", to_st(w.nested_absmax));
  out.emplace_back(name + ".nested_quant_map", to_st(w.nested_quant_map));
  const std::string json = nf4_quant_state_json(shape, w.offset, dtype);
  out.emplace_back(name + kNF4QuantStateSuffix,
                   StTensor{StDType::U8, {static_cast<int64_t>(json.size())},
                            std::vector<uint8_t>(json.begin(), json.end())});
  return out;
}

bool is_nf4_weight(const SafetensorsSet& weights, const std::string& name) {
  return weights.contains(name + kNF4QuantStateSuffix);
}
bool is_nf4_weight(const SafetensorsReader& reader, const std::string& name) {
  return reader.contains(name + kNF4QuantStateSuffix);
}

std::vector<std::string> nf4_weight_names(const SafetensorsSet& weights) {
  std::vector<std::string> out;
  const std::string suffix = kNF4QuantStateSuffix;
  for (const std::string& n : weights.names())
    if (n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0)
      out.push_back(n.substr(0, n.size() - suffix.size()));
  return out;
}
std::vector<std::string> nf4_weight_names(const SafetensorsReader& reader) {
  return nf4_weight_names(SafetensorsSet::of(reader));
}

ops::NF4Weight load_nf4(Context& ctx, const SafetensorsReader& reader, const std::string& name,
                        MemCategory category) {
  return load_nf4(ctx, SafetensorsSet::of(reader), name, category);
}

ops::NF4Weight load_nf4(Context& ctx, const SafetensorsSet& weights, const std::string& name,
                        MemCategory category) {
  const std::string where = weights.contains(name) ? weights.reader(name).path().string() : weights.path().string();
  const std::string what = where + ": NF4 weight '" + excerpt(name) + "'";
  const auto fail = [&what](const std::string& msg) { fail_with(what, msg); };
  for (const char* part : {"", ".absmax", ".quant_map", ".nested_absmax", ".nested_quant_map",
                           kNF4QuantStateSuffix})
    if (!weights.contains(name + part)) {
      if (std::string(part) == ".nested_absmax")
        fail("has no nested_absmax: Magellano reads double-quantized (bnb_4bit_use_double_quant) "
             "weights only. Quantize the original weights with `magellano quantize`.");
      fail(std::string("is missing '") + excerpt(name + part) + "'. Is the file complete?");
    }
  const auto expect_dtype = [&](const std::string& key, StDType want) {
    if (weights.dtype(key) != want)
      fail("has '" + key + "' stored as " + st_dtype_name(weights.dtype(key)) + ", expected " +
           st_dtype_name(want) + ".");
  };
  expect_dtype(name, StDType::U8);
  expect_dtype(name + ".absmax", StDType::U8);
  expect_dtype(name + ".quant_map", StDType::F32);
  expect_dtype(name + ".nested_absmax", StDType::F32);
  expect_dtype(name + ".nested_quant_map", StDType::F32);
  expect_dtype(name + kNF4QuantStateSuffix, StDType::U8);

  const StTensor js = weights.read(name + kNF4QuantStateSuffix);
  const nlohmann::json state = parse_json(std::string_view(reinterpret_cast<const char*>(js.bytes.data()), js.bytes.size()),
                                          what + "'s quant state", " The file is corrupt.");
  const auto get = [&](const char* key) -> const nlohmann::json& {
    if (!state.is_object() || !state.contains(key))
      fail_with(what, std::string("has no \"") + key + "\" in its quant state.");
    return state.at(key);
  };
  if (get("quant_type") != "nf4") fail("is quant_type " + json_excerpt(get("quant_type")) + ", not \"nf4\".");
  if (get("blocksize") != ops::kNF4BlockSize)
    fail("has blocksize " + json_excerpt(get("blocksize")) + "; Magellano reads blocksize 64.");
  if (get("nested_blocksize") != ops::kNestedBlockSize)
    fail("has nested_blocksize " + json_excerpt(get("nested_blocksize")) + "; Magellano reads 256.");
  const auto& jshape = get("shape");
  std::vector<int64_t> shape;
  if (!jshape.is_array() || jshape.empty() || jshape.size() > 4)
    fail("has shape " + json_excerpt(jshape) + "; expected a list of 1 to 4 sizes.");
  int64_t numel = 1;  // must fit int64 (Shape::numel() multiplies without checks)
  for (const auto& d : jshape) {
    if (!d.is_number_integer() || d.get<int64_t>() <= 0 || __builtin_mul_overflow(numel, d.get<int64_t>(), &numel))
      fail("has shape " + json_excerpt(jshape) + ".");
    shape.push_back(d.get<int64_t>());
  }
  const auto& joff = get("nested_offset");
  if (!joff.is_number()) fail("has nested_offset " + json_excerpt(joff) + "; expected a number.");
  // bitsandbytes: torch.tensor(float(nested_offset)), i.e. the value rounded to fp32.
  const float offset = static_cast<float>(joff.get<double>());

  std::vector<uint8_t> packed = weights.read(name).bytes;
  std::vector<uint8_t> absmax_q = weights.read(name + ".absmax").bytes;
  // The f32 parts scale every weight: one NaN there is NaN weights.
  std::vector<float> nested_absmax = weights.read_f32(name + ".nested_absmax"),
                     quant_map = weights.read_f32(name + ".quant_map"),
                     nested_quant_map = weights.read_f32(name + ".nested_quant_map");
  require_finite(nested_absmax, what + " nested_absmax");
  require_finite(quant_map, what + " quant_map");
  require_finite(nested_quant_map, what + " nested_quant_map");
  return ops::nf4_from_host(ctx, Shape(shape), packed, absmax_q, nested_absmax, offset, quant_map,
                              nested_quant_map, what, category);
}

}  // namespace magellano::io
